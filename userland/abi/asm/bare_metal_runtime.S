/* Symbols the precompiled `core`/`alloc` expect from libc and the unwinder,
 * for every bare-metal binary capOS builds on the host target: the kernel
 * (kernel/src/arch/x86_64/mod.rs) and user programs (userland/runtime)
 * include this one file. Written in assembly so the compiler cannot turn
 * them back into calls to themselves. The unwinder symbols are never
 * reached under panic=abort. */
.text
/* The copies and fills move eight bytes per step, then the rest byte by
 * byte: under TCG each step of a `rep` instruction is a pass through a
 * translated block, so byte steps cost eight times as much. Each has a
 * section of its own, so the kernel's linker script can place them beside
 * the system call path. */
.section .text.memcpy, "ax"
.global memcpy
memcpy:
    movq %rdi, %rax
    movq %rdx, %rcx
    shrq $3, %rcx
    rep movsq
    movq %rdx, %rcx
    andq $7, %rcx
    rep movsb
    retq

.section .text.memset, "ax"
.global memset
memset:
    movq %rdi, %r9
    movzbl %sil, %eax
    movabsq $0x0101010101010101, %r8
    imulq %r8, %rax
    movq %rdx, %rcx
    shrq $3, %rcx
    rep stosq
    movq %rdx, %rcx
    andq $7, %rcx
    rep stosb
    movq %r9, %rax
    retq

/* Overlapping with the destination above the source: copy backwards, the
 * odd top bytes first, then eight-byte steps down to the start. */
.section .text.memmove, "ax"
.global memmove
memmove:
    movq %rdi, %rax
    cmpq %rsi, %rdi
    jbe 1f
    leaq (%rsi, %rdx), %r8
    cmpq %r8, %rdi
    jae 1f
    leaq -1(%rdi, %rdx), %rdi
    leaq -1(%rsi, %rdx), %rsi
    movq %rdx, %rcx
    andq $7, %rcx
    std
    rep movsb
    subq $7, %rdi
    subq $7, %rsi
    movq %rdx, %rcx
    shrq $3, %rcx
    rep movsq
    cld
    retq
    /* Otherwise a forward copy is safe. */
1:  jmp memcpy

.text
.global memcmp
.global bcmp
memcmp:
bcmp:
    xorl %eax, %eax
    testq %rdx, %rdx
    jz 2f
1:  movzbl (%rdi), %eax
    movzbl (%rsi), %ecx
    subl %ecx, %eax
    jnz 2f
    incq %rdi
    incq %rsi
    decq %rdx
    jnz 1b
2:  retq

.global _Unwind_Resume
_Unwind_Resume:
    ud2

.global rust_eh_personality
rust_eh_personality:
    ud2
