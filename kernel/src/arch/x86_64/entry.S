/* Common interrupt entry: the per-vector stub pushed (error code, vector).
 * Save the general registers into an `InterruptFrame`, switch GS if we came
 * from user mode, call `interrupt_dispatch(frame)`, restore, return.
 * The stack is 16-byte aligned at the call (5 CPU words + 2 stub words +
 * 15 registers = 22 words). */

.text
.global interrupt_common
interrupt_common:
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
    testb $3, 18 * 8(%rsp)
    jz 1f
    swapgs
1:  movq %rsp, %rdi
    cld
    callq interrupt_dispatch
    testb $3, 18 * 8(%rsp)
    jz 2f
    swapgs
2:  popq %r15
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
    addq $16, %rsp
    iretq
