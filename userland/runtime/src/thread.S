/* Thread entry (thread.rs). The kernel starts a thread made by
 * `thread::spawn` here in user mode with rsp = its stack top (16-byte
 * aligned, nothing pushed), rdi = its own ring base, rsi = the argument
 * (`spawn` passes its ThreadBlock), rdx = its thread id, FS base = the same
 * ThreadBlock, every other register zero. `capos_runtime_thread_main` takes
 * rdi/rsi/rdx as its three arguments and never returns. */

.section .text.capos_thread_start, "ax"
.global capos_thread_start
.type capos_thread_start, @function
capos_thread_start:
    andq $-16, %rsp        /* keep the call ABI even for a misaligned stack top */
    xorl %ebp, %ebp        /* end of the frame-pointer chain */
    call capos_runtime_thread_main
    ud2
.size capos_thread_start, . - capos_thread_start
.text
