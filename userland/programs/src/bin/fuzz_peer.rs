//! `fuzz-peer`: the processes that run beside the fuzzer, told apart by
//! their argument (last slot: boot-manifest).
//!
//! - `echo-server` (0 console, 1 `echo` endpoint-server): answers every call
//!   with the message reversed and drops any capability that came with it,
//!   until [`STOP`] arrives (from the fuzzer, once its own calls are done);
//!   it then answers the next call with [`STOPPED`] and exits.
//! - `echo-client` (0 console, 1 `echo` endpoint): valid traffic during the
//!   whole fuzz run: calls `ping-<n>` and checks each reply, until it gets
//!   [`STOPPED`]; prints `[fuzz-peer] echo-client calls=<n> ok`.
//! - `napper` (0 console, 1 timer): sleeps 1 ms and exits 0 (a child the
//!   fuzzer may spawn and wait for).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::limits::MESSAGE_MAX;
use capos_runtime::{options, println, CapabilityHandle, Context, Error};

capos_runtime::entry!(main);

/// The fuzzer's stop message (never produced by its random traffic, whose
/// messages come from its scratch arena).
pub const STOP: &[u8] = b"fuzz-peer:stop:9f2c1a7e";
/// The server's answer to the echo client once stopped.
pub const STOPPED: &[u8] = b"fuzz-peer:stopped";

fn main(context: &mut Context) -> i32 {
    let manifest = CapabilityHandle::new(context.slot_count().saturating_sub(1), 0);
    let arguments = context
        .ring()
        .manifest_arguments(manifest)
        .unwrap_or_default();
    let role = options::role(&arguments, &["echo-server", "echo-client", "napper"]);
    let result = match role {
        Some("echo-server") => serve(context),
        Some("echo-client") => client(context),
        Some("napper") => context
            .ring()
            .timer_sleep(CapabilityHandle::new(1, 0), 1_000_000)
            .map_err(|error| format!("sleep {}", error.name())),
        _ => Err(format!("unknown role in {arguments:?}")),
    };
    match result {
        Ok(()) => 0,
        Err(problem) => {
            println!(
                context,
                "[fuzz-peer] {} FAILED {problem}",
                role.unwrap_or("?")
            );
            1
        }
    }
}

fn serve(context: &mut Context) -> Result<(), String> {
    let endpoint = context.capability(1);
    let mut buffer = [0u8; MESSAGE_MAX as usize];
    let mut stopping = false;
    loop {
        let received = match context.ring().endpoint_receive(endpoint, &mut buffer) {
            Ok(received) => received,
            // The caller's capability could not be granted (our table is
            // full): the call stays queued; make room and receive again.
            Err(Error::QuotaExhausted | Error::OutOfMemory) => continue,
            Err(error) => return Err(format!("receive {}", error.name())),
        };
        if let Some(handle) = received.transferred {
            context
                .ring()
                .drop_capability(handle)
                .map_err(|error| format!("drop transferred {}", error.name()))?;
        }
        let message = &mut buffer[..received.length.min(MESSAGE_MAX as usize)];
        let (answer, done): (Vec<u8>, bool) = if stopping {
            (STOPPED.into(), true)
        } else if message == STOP {
            stopping = true;
            (b"ok".as_slice().into(), false)
        } else {
            message.reverse();
            (message.to_vec(), false)
        };
        // A reply the caller cannot take (small or bad buffer) fails the
        // caller's call, not this reply; the fuzzer does that on purpose.
        context
            .ring()
            .endpoint_reply(endpoint, received.token, &answer, None)
            .map_err(|error| format!("reply {}", error.name()))?;
        if done {
            return Ok(());
        }
    }
}

fn client(context: &mut Context) -> Result<(), String> {
    let endpoint = context.capability(1);
    let mut calls = 0u64;
    loop {
        let message = format!("ping-{calls}");
        let mut reply = [0u8; MESSAGE_MAX as usize];
        let (length, _) = context
            .ring()
            .endpoint_call(endpoint, message.as_bytes(), None, &mut reply)
            .map_err(|error| format!("call={calls} {}", error.name()))?;
        let reply = &reply[..length.min(reply.len())];
        if reply == STOPPED {
            println!(context, "[fuzz-peer] echo-client calls={calls} ok");
            return Ok(());
        }
        let expected: Vec<u8> = message.bytes().rev().collect();
        if reply != expected.as_slice() {
            return Err(format!(
                "call={calls} reply={:?}",
                String::from_utf8_lossy(reply)
            ));
        }
        calls += 1;
    }
}
