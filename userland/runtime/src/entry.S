/* Process entry. The kernel starts the first thread here in user mode with
 * rsp = layout::STACK_TOP (16-byte aligned), rdi = ring base, rsi = number of
 * capability slots, every other register zero. `runtime_start` is generated
 * by `capos_runtime::entry!` in the program crate and never returns. */

.section .text._start, "ax"
.global _start
.type _start, @function
_start:
    andq $-16, %rsp        /* keep the call ABI even if the kernel misaligned rsp */
    xorl %ebp, %ebp        /* end of the frame-pointer chain */
    call runtime_start
    ud2
.size _start, . - _start
.text
