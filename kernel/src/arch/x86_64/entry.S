/* Common interrupt entry: the per-vector stub pushed (error code, vector).
 * From user mode the thread's FPU/SSE state is saved to gs:24 on entry and
 * restored on return, because kernel code (and the precompiled `core`) uses
 * SSE registers.
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
 * same frame an interrupt from user mode would (SS, RSP, RFLAGS, CS, RIP,
 * error 0, vector SYSCALL_VECTOR), call `syscall_dispatch(frame)`, and
 * return with SYSRET (RIP, RFLAGS and RSP from the frame). Interrupts stay
 * off until SYSRET restores the user RFLAGS, so nothing runs on the user
 * stack in kernel mode. */
.set SYSCALL_VECTOR, 0x100
.set USER_CODE_SELECTOR, 0x2B
.set USER_DATA_SELECTOR, 0x23

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
    SAVE_GENERAL_REGISTERS
    movq %gs:24, %rax
    SAVE_FPU_STATE
    movq %rsp, %rdi
    /* SFMASK already cleared every user-settable flag; DF stays clear. */
    cld
    callq syscall_dispatch
    /* Return with SYSRET when the frame still holds a canonical user RIP
     * (always, unless the kernel rewrote it); otherwise take the IRET path,
     * since SYSRET with a non-canonical RCX faults in kernel mode. */
    movq 17 * 8(%rsp), %rcx
    movq %rcx, %r11
    sarq $47, %r11
    jnz interrupt_return
    movq %gs:24, %rax
    RESTORE_FPU_STATE
    RESTORE_GENERAL_REGISTERS
    addq $16, %rsp
    movq 0(%rsp), %rcx
    movq 16(%rsp), %r11
    swapgs
    movq 24(%rsp), %rsp
    sysretq

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
