/* Common interrupt entry: the per-vector stub pushed (error code, vector).
 * From user mode the thread's whole FPU state is saved to gs:24 on entry
 * and restored on return, because kernel code (and the precompiled `core`)
 * uses SSE registers. The syscall path saves only MXCSR (the SSE registers
 * are caller-saved there and come back zero); a thread that switches away
 * inside a system call saves its x87/MMX and upper-AVX state too
 * (`fpu_save_in_system_call`), so what the return to user mode needs is in
 * the area whenever the thread is off its CPU.
 * Save the general registers into an `InterruptFrame`, switch GS if we came
 * from user mode, call `interrupt_dispatch(frame)`, restore, return.
 * The stack is 16-byte aligned at the call (5 CPU words + 2 stub words +
 * 15 registers = 22 words). */

/* Save / restore the user FPU/SSE(/AVX) state at (%rax): XSAVE with every
 * enabled component when the CPU has it (`use_xsave` set at boot), else
 * FXSAVE. Clobbers rdx; rax holds the area. */
.macro SAVE_FPU_STATE
    cmpb $0, use_xsave(%rip)
    je 91f
    movq %rax, %rcx
    movl $-1, %eax
    movl $-1, %edx
    xsave64 (%rcx)
    jmp 92f
91: fxsave64 (%rax)
92:
.endm

.macro RESTORE_FPU_STATE
    cmpb $0, use_xsave(%rip)
    je 93f
    movq %rax, %rcx
    movl $-1, %eax
    movl $-1, %edx
    xrstor64 (%rcx)
    jmp 94f
93: fxrstor64 (%rax)
94:
.endm

/* The InterruptFrame register block, rax pushed first (highest address). */
.macro SAVE_GENERAL_REGISTERS
    pushq %rax
    pushq %rbx
    pushq %rcx
    pushq %rdx
    pushq %rsi
    pushq %rdi
    pushq %rbp
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
.endm

.macro RESTORE_GENERAL_REGISTERS
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rbp
    popq %rdi
    popq %rsi
    popq %rdx
    popq %rcx
    popq %rbx
    popq %rax
.endm

.text
.global interrupt_common
interrupt_common:
    SAVE_GENERAL_REGISTERS
    testb $3, 18 * 8(%rsp)
    jz 1f
    swapgs
    movq %gs:24, %rax
    SAVE_FPU_STATE
    ldmxcsr kernel_mxcsr(%rip)
1:  movq %rsp, %rdi
    /* Kernel flags only: the gate cleared IF, TF, NT and RF; this also
     * clears DF and AC, whatever the interrupted code had. */
    pushq $2
    popfq
    callq interrupt_dispatch
.global interrupt_return
interrupt_return:
    testb $3, 18 * 8(%rsp)
    jz 2f
    movq %gs:24, %rax
    RESTORE_FPU_STATE
    swapgs
2:
    RESTORE_GENERAL_REGISTERS
    addq $16, %rsp
    iretq

/* `syscall` entry. The CPU left the user RIP in RCX and RFLAGS in R11 and
 * masked IF (SFMASK). Switch to the thread's kernel stack (gs:8), build the
 * frame an interrupt from user mode would (SS, RSP, RFLAGS, CS, RIP, error
 * 0, vector SYSCALL_VECTOR, then the register block), call
 * `syscall_dispatch(frame)`, and return with SYSRET (RIP, RFLAGS and RSP
 * from the frame). Interrupts stay off until SYSRET restores the user
 * RFLAGS, so nothing runs on the user stack in kernel mode.
 *
 * A system call is a call under the System V ABI (docs/abi.md): it
 * preserves RBX, RBP, R12-R15, MXCSR and the x87/MMX/upper-AVX state, and
 * the caller-saved registers come back zero (RAX holds the result, RCX and
 * R11 the RIP and RFLAGS SYSRET needs). So the entry stores only what the
 * dispatcher reads (RAX, RDI, RSI) and the user MXCSR; the callee-saved
 * registers survive because `syscall_dispatch` is an `extern "C"` function
 * (a switch inside it saves them in `switch_kernel_stack`), and the exit
 * zeroes the rest, so no kernel value reaches user mode. The other slots
 * of the register block stay unwritten until the rare IRET exit fills
 * them. */
.set SYSCALL_VECTOR, 0x100
.set USER_CODE_SELECTOR, 0x2B
.set USER_DATA_SELECTOR, 0x23
.set KERNEL_MXCSR, 0x1F80

/* Zero XMM0-15 (legacy encoding: the upper AVX halves keep the thread's
 * own values, which kernel code never touches). */
.macro ZERO_SSE_REGISTERS
    xorps %xmm0, %xmm0
    xorps %xmm1, %xmm1
    xorps %xmm2, %xmm2
    xorps %xmm3, %xmm3
    xorps %xmm4, %xmm4
    xorps %xmm5, %xmm5
    xorps %xmm6, %xmm6
    xorps %xmm7, %xmm7
    xorps %xmm8, %xmm8
    xorps %xmm9, %xmm9
    xorps %xmm10, %xmm10
    xorps %xmm11, %xmm11
    xorps %xmm12, %xmm12
    xorps %xmm13, %xmm13
    xorps %xmm14, %xmm14
    xorps %xmm15, %xmm15
.endm

.section .text.syscall_path, "ax"
.global syscall_entry
syscall_entry:
    swapgs
    movq %rsp, %gs:16
    movq %gs:8, %rsp
    pushq $USER_DATA_SELECTOR
    pushq %gs:16
    pushq %r11
    pushq $USER_CODE_SELECTOR
    pushq %rcx
    pushq $0
    pushq $SYSCALL_VECTOR
    /* Register block (InterruptFrame order): rax; rbx, rcx, rdx unwritten;
     * rsi, rdi; rbp and r8-r15 unwritten. */
    pushq %rax
    subq $24, %rsp
    pushq %rsi
    pushq %rdi
    subq $72, %rsp
    /* The user MXCSR goes to its slot of the thread's FPU area (where a
     * switch inside the kernel expects it); the kernel's is loaded unless
     * it is the same. */
    movq %gs:24, %rax
    stmxcsr 24(%rax)
    cmpl $KERNEL_MXCSR, 24(%rax)
    je 1f
    ldmxcsr kernel_mxcsr(%rip)
1:  movq %rsp, %rdi
    /* SFMASK already cleared every user-settable flag; DF stays clear. */
    cld
    callq syscall_dispatch
    /* Return with SYSRET when the frame still holds a canonical user RIP;
     * otherwise take the IRET path, since SYSRET with a non-canonical RCX
     * faults in kernel mode. */
    movq 17 * 8(%rsp), %rcx
    movq %rcx, %r11
    sarq $47, %r11
    jnz 3f
    /* Kernel code runs with the kernel's MXCSR (a switch inside the call
     * loads it again), so the user's needs loading only when it differs,
     * as at the entry. */
    movq %gs:24, %rax
    cmpl $KERNEL_MXCSR, 24(%rax)
    je 4f
    ldmxcsr 24(%rax)
4:  ZERO_SSE_REGISTERS
    movq 14 * 8(%rsp), %rax
    xorl %edx, %edx
    xorl %esi, %esi
    xorl %edi, %edi
    xorl %r8d, %r8d
    xorl %r9d, %r9d
    xorl %r10d, %r10d
    addq $17 * 8, %rsp
    movq 0(%rsp), %rcx
    movq 16(%rsp), %r11
    swapgs
    movq 24(%rsp), %rsp
    sysretq
    /* The IRET path restores the whole saved state: complete it first, with
     * what the SYSRET path would have returned. */
3:  movq %r15, 0 * 8(%rsp)
    movq %r14, 1 * 8(%rsp)
    movq %r13, 2 * 8(%rsp)
    movq %r12, 3 * 8(%rsp)
    movq $0, 4 * 8(%rsp)
    movq $0, 5 * 8(%rsp)
    movq $0, 6 * 8(%rsp)
    movq $0, 7 * 8(%rsp)
    movq %rbp, 8 * 8(%rsp)
    movq $0, 9 * 8(%rsp)
    movq $0, 10 * 8(%rsp)
    movq $0, 11 * 8(%rsp)
    movq $0, 12 * 8(%rsp)
    movq %rbx, 13 * 8(%rsp)
    movq %gs:24, %rax
    ldmxcsr 24(%rax)
    ZERO_SSE_REGISTERS
    SAVE_FPU_STATE
    jmp interrupt_return

.text

/* A thread that switches away inside a system call keeps only what the
 * system call preserves (docs/abi.md): MXCSR, already in its slot since the
 * entry, and the x87/MMX and upper-AVX state, still in the registers. The
 * SSE registers are the kernel's and come back zero on SYSRET, so they are
 * neither saved nor loaded here (before, the switch reloaded all sixteen
 * from the area and saved and restored the whole FXSAVE/XSAVE image: under
 * TCG every 8 bytes of it is a helper call). With XSAVE: XSAVE/XRSTOR of
 * x87 and AVX only (bits 0 and 2; MXCSR, which comes with AVX, is loaded
 * from its slot first so the slot keeps the thread's value). Without: FNSAVE
 * (which also resets the x87 unit) / FRSTOR of the 108-byte x87 image at
 * X87_IMAGE_OFFSET, a part of the area FXSAVE does not use.
 *
 * fpu_save_in_system_call(area), fpu_restore_in_system_call(area). */
.section .text.switch_path, "ax"
.set X87_IMAGE_OFFSET, 512
.set XSAVE_X87_AVX, 0b101
.global fpu_save_in_system_call
fpu_save_in_system_call:
    cmpb $0, use_xsave(%rip)
    je 1f
    ldmxcsr 24(%rdi)
    movl $XSAVE_X87_AVX, %eax
    xorl %edx, %edx
    xsave64 (%rdi)
    ldmxcsr kernel_mxcsr(%rip)
    retq
1:  fnsave X87_IMAGE_OFFSET(%rdi)
    retq

.global fpu_restore_in_system_call
fpu_restore_in_system_call:
    cmpb $0, use_xsave(%rip)
    je 1f
    movl $XSAVE_X87_AVX, %eax
    xorl %edx, %edx
    xrstor64 (%rdi)
    ldmxcsr kernel_mxcsr(%rip)
    retq
1:  frstor X87_IMAGE_OFFSET(%rdi)
    retq

/* MXCSR while kernel code runs: every exception masked, round to nearest,
 * whatever user space chose. */
.section .rodata
.balign 4
kernel_mxcsr:
    .long KERNEL_MXCSR
.text

/* First switch into a new thread returns here with RSP at its user frame
 * (16-byte aligned). A thread killed before it ever ran ends here instead
 * of entering user mode. */
.global thread_first_entry
thread_first_entry:
    callq thread_start_check
    jmp interrupt_return

/* switch_kernel_stack(save: *mut u64, load: u64): save RFLAGS and the
 * callee-saved registers on the current kernel stack, store RSP to *save,
 * load RSP and pop the other context's registers and RFLAGS. Returns into
 * the other context, so no context ever runs with another's flags. */
.section .text.switch_path, "ax"
.global switch_kernel_stack
switch_kernel_stack:
    pushfq
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    popfq
    retq
