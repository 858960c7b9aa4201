//! `endpoint-client`: three calls to `endpoint-server`, each reply checked
//! (the message reversed); the third must carry a console capability, which
//! it uses to print `[endpoint-client] transferred console works`. Then
//! `[endpoint-client] calls=3 ok` and the timed round trips,
//! `[endpoint-client] round_trips=3 total_ns=<n>`; or
//! `[endpoint-client] FAILED ...` and exit 1. Slots: 0 console, 1 endpoint,
//! 2 timer.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::limits::MESSAGE_MAX;
use capos_runtime::{println, Context};

capos_runtime::entry!(main);

const ENDPOINT_SLOT: u16 = 1;
const TIMER_SLOT: u16 = 2;
const CALLS: u32 = 3;

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(total_ns) => {
            println!(context, "[endpoint-client] calls={CALLS} ok");
            println!(
                context,
                "[endpoint-client] round_trips={CALLS} total_ns={total_ns}"
            );
            0
        }
        Err(problem) => {
            println!(context, "[endpoint-client] FAILED {problem}");
            1
        }
    }
}

/// Make the calls and check them; returns the nanoseconds they took.
fn run(context: &mut Context) -> Result<u64, String> {
    let endpoint = context.capability(ENDPOINT_SLOT);
    let timer = context.capability(TIMER_SLOT);
    let now = |context: &mut Context| {
        context
            .ring()
            .timer_now(timer)
            .map_err(|error| format!("timer error={}", error.name()))
    };
    let start = now(context)?;
    for call in 1..=CALLS {
        let message = format!("ping-{call}");
        let expected: Vec<u8> = message.bytes().rev().collect();
        let mut reply = [0u8; MESSAGE_MAX as usize];
        let (length, transferred) = context
            .ring()
            .endpoint_call(endpoint, message.as_bytes(), None, &mut reply)
            .map_err(|error| format!("call={call} error={}", error.name()))?;
        let reply = &reply[..length.min(reply.len())];
        if reply != expected.as_slice() {
            return Err(format!(
                "call={call} reply={:?} expected={:?}",
                String::from_utf8_lossy(reply),
                String::from_utf8_lossy(&expected)
            ));
        }
        match (call == CALLS, transferred) {
            (true, Some(console)) => {
                context
                    .ring()
                    .console_write(console, b"[endpoint-client] transferred console works\n")
                    .map_err(|error| format!("transferred console write error={}", error.name()))?;
            }
            (true, None) => return Err(format!("call={call} no capability transferred")),
            (false, Some(handle)) => {
                return Err(format!("call={call} unexpected capability {:#x}", handle.0))
            }
            (false, None) => {}
        }
    }
    Ok(now(context)?.saturating_sub(start))
}
