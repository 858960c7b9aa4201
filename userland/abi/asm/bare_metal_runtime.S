/* Symbols the precompiled `core`/`alloc` expect from libc and the unwinder,
 * for every bare-metal binary capOS builds on the host target: the kernel
 * (kernel/src/arch/x86_64/mod.rs) and user programs (userland/runtime)
 * include this one file. Written in assembly so the compiler cannot turn
 * them back into calls to themselves. The unwinder symbols are never
 * reached under panic=abort. */
.text
.global memcpy
memcpy:
    movq %rdi, %rax
    movq %rdx, %rcx
    rep movsb
    retq

.global memset
memset:
    movq %rdi, %r9
    movl %esi, %eax
    movq %rdx, %rcx
    rep stosb
    movq %r9, %rax
    retq

.global memmove
memmove:
    movq %rdi, %rax
    movq %rdx, %rcx
    cmpq %rsi, %rdi
    jbe 1f
    leaq (%rsi, %rdx), %r8
    cmpq %r8, %rdi
    jae 1f
    leaq -1(%rdi, %rdx), %rdi
    leaq -1(%rsi, %rdx), %rsi
    std
    rep movsb
    cld
    retq
1:  rep movsb
    retq

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
