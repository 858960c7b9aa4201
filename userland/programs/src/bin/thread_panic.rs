//! `thread-panic`: a spawned thread panics while the first thread waits in
//! `ThreadJoin`; the whole process must end with the panic exit code 101.
//! Started by `thread-hostile`. Slots: 0 console, 1 thread-spawner.
//!
//! Prints `[thread-panic] joining a thread that panics`, then switches the
//! console off so the panic handler prints nothing: the smoke harness
//! forbids every `[panic]` line. (With the console on, the message goes
//! out through the panicking thread's own ring, the first thread's being
//! busy.) If the join ever returns it prints
//! `[thread-panic] error: survived` and exits 1.
#![no_std]
#![no_main]

use capos_runtime::thread;
use capos_runtime::{println, Context};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;

fn main(context: &mut Context) -> i32 {
    println!(context, "[thread-panic] joining a thread that panics");
    let console = context.console();
    context.set_console(None);
    let panicking = thread::spawn(
        context,
        context.capability(SPAWNER_SLOT),
        |_, _| {
            let pointer = thread::current_thread_pointer().unwrap_or(0);
            panic!("deliberate panic on thread {pointer:#x}");
        },
        0,
    );
    let outcome = panicking.map(|handle| handle.join_end(context));
    context.set_console(console);
    println!(context, "[thread-panic] error: survived {outcome:?}");
    1
}
