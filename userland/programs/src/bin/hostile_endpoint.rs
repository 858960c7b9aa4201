//! `hostile-endpoint`: no client can receive another's call or forge the
//! server's reply. One binary, four manifest processes on one endpoint,
//! told apart by their argument (slots: 0 console, 1 the endpoint, 2
//! boot-manifest):
//!
//! - `server` (`endpoint-server`): receives client A's call and holds it
//!   unanswered until both thieves report done, then replies, then replies
//!   again with the same token (must be `not-found`) and with a token it was
//!   never given (`not-found`).
//! - `client-a` (`endpoint`): one call; the reply must be exactly
//!   [`REAL_REPLY`] with no capability attached.
//! - `thief` (`endpoint`, call only): while A's call waits, replies with
//!   every token 0..=[`TOKEN_SWEEP`] and [`RANDOM_TOKENS`] random ones, each
//!   transferring its console (every one must be `missing-right`), then
//!   tries to receive (`missing-right`, at once).
//! - `server-thief` (`endpoint-server`, but it never receives): the same
//!   reply sweep, each `not-found` (a token binds to the thread that
//!   received the call).
//!
//! The thieves learn that A's call is waiting by calling `ready` (answered
//! `go` only once the server holds A's call) and report with `done`, also
//! after a failed check, so every process finishes. A sweep counts what
//! each reply got and fails with `forged-accepted=<n> tokens=[...]` if any
//! reply was taken.
//! Lines: `[hostile-endpoint] <role> ... ok`, or `... FAILED ...` (exit 1).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::limits::MESSAGE_MAX;
use capos_runtime::{options, println, CapabilityHandle, Context, Error, Opcode, Submission};

capos_runtime::entry!(main);

const ENDPOINT_SLOT: u16 = 1;
const MANIFEST_SLOT: u16 = 2;
/// Tokens 0..=TOKEN_SWEEP are tried (the kernel counts them from 1).
const TOKEN_SWEEP: u64 = 1000;
const RANDOM_TOKENS: u64 = 64;
const REAL_REPLY: &[u8] = b"the server's own answer to A";
const FORGED_REPLY: &[u8] = b"forged by a thief";
const THIEVES: u32 = 2;
/// How long the thief waits for a refused receive to complete.
const RECEIVE_WAIT_NS: u64 = 200_000_000;

fn main(context: &mut Context) -> i32 {
    let manifest = context.capability(MANIFEST_SLOT);
    let arguments = context
        .ring()
        .manifest_arguments(manifest)
        .unwrap_or_default();
    let role = options::role(&arguments, &["server", "client-a", "thief", "server-thief"]);
    let result = match role {
        Some("server") => serve(context),
        Some("client-a") => client_a(context),
        Some("thief") => thief(context, Error::MissingRight, true),
        Some("server-thief") => thief(context, Error::NotFound, false),
        _ => Err(format!("unknown role in {arguments:?}")),
    };
    match result {
        Ok(()) => 0,
        Err(problem) => {
            println!(
                context,
                "[hostile-endpoint] {} FAILED {problem}",
                role.unwrap_or("?")
            );
            1
        }
    }
}

fn serve(context: &mut Context) -> Result<(), String> {
    let endpoint = context.capability(ENDPOINT_SLOT);
    let mut a_token = None;
    let mut waiting_ready: Vec<u64> = Vec::new();
    let mut done = 0;
    let mut buffer = [0u8; MESSAGE_MAX as usize];
    while done < THIEVES {
        let received = context
            .ring()
            .endpoint_receive(endpoint, &mut buffer)
            .map_err(|error| format!("receive {}", error.name()))?;
        let message = &buffer[..received.length.min(buffer.len())];
        let answer_now = |context: &mut Context, token: u64, text: &[u8]| {
            context
                .ring()
                .endpoint_reply(endpoint, token, text, None)
                .map_err(|error| format!("reply {}", error.name()))
        };
        match message {
            b"a" => {
                a_token = Some(received.token);
                for token in waiting_ready.drain(..) {
                    answer_now(context, token, b"go")?;
                }
            }
            b"ready" if a_token.is_some() => answer_now(context, received.token, b"go")?,
            b"ready" => waiting_ready.push(received.token),
            b"done" => {
                done += 1;
                answer_now(context, received.token, b"ok")?;
            }
            other => return Err(format!("unexpected message {other:?}")),
        }
    }
    let token = a_token.ok_or_else(|| String::from("client A never called"))?;
    context
        .ring()
        .endpoint_reply(endpoint, token, REAL_REPLY, None)
        .map_err(|error| format!("real reply {}", error.name()))?;
    let again = context
        .ring()
        .endpoint_reply(endpoint, token, REAL_REPLY, None);
    let never = context
        .ring()
        .endpoint_reply(endpoint, token + 1_000_000, REAL_REPLY, None);
    if again != Err(Error::NotFound) || never != Err(Error::NotFound) {
        return Err(format!("second reply {again:?}, unissued token {never:?}"));
    }
    println!(
        context,
        "[hostile-endpoint] server second-reply error=not-found unissued-token error=not-found ok"
    );
    Ok(())
}

fn client_a(context: &mut Context) -> Result<(), String> {
    let endpoint = context.capability(ENDPOINT_SLOT);
    let mut reply = [0u8; MESSAGE_MAX as usize];
    let (length, transferred) = context
        .ring()
        .endpoint_call(endpoint, b"a", None, &mut reply)
        .map_err(|error| format!("call {}", error.name()))?;
    let reply = &reply[..length.min(reply.len())];
    if reply != REAL_REPLY || transferred.is_some() {
        return Err(format!(
            "reply {:?} with capability {transferred:?}",
            String::from_utf8_lossy(reply)
        ));
    }
    println!(context, "[hostile-endpoint] client-a reply intact ok");
    Ok(())
}

/// Wait until the server holds A's call, sweep reply tokens (each must be
/// refused with `expected`), optionally try to receive, report done (also
/// after a failure, so the server and client A can finish).
fn thief(context: &mut Context, expected: Error, try_receive: bool) -> Result<(), String> {
    let endpoint = context.capability(ENDPOINT_SLOT);
    call(context, endpoint, b"ready", b"go")?;
    let outcome = sweep(context, endpoint, expected, try_receive);
    call(context, endpoint, b"done", b"ok")?;
    outcome
}

/// The reply sweep and the receive attempt of [`thief`].
fn sweep(
    context: &mut Context,
    endpoint: CapabilityHandle,
    expected: Error,
    try_receive: bool,
) -> Result<(), String> {
    let console = context.capability(0);
    let role = if try_receive { "thief" } else { "server-thief" };
    let mut random = capos_runtime::random::XorShift::new(timestamp() | 1);
    let tokens = (0..=TOKEN_SWEEP).chain((0..RANDOM_TOKENS).map(|_| random.next_u64()));
    let (mut tried, mut accepted, mut other) = (0u64, Vec::new(), 0u64);
    for token in tokens {
        tried += 1;
        match context
            .ring()
            .endpoint_reply(endpoint, token, FORGED_REPLY, Some(console))
        {
            Err(error) if error == expected => {}
            Ok(()) => accepted.push(token),
            Err(_) => other += 1,
        }
    }
    if !accepted.is_empty() || other != 0 {
        return Err(format!(
            "replies={tried} forged-accepted={} tokens={accepted:?} other-errors={other}",
            accepted.len()
        ));
    }
    println!(
        context,
        "[hostile-endpoint] {role} replies={tried} error={} ok",
        expected.name()
    );
    if try_receive {
        let refusal = refused_receive(context, endpoint)?;
        if refusal != Error::MissingRight {
            return Err(format!("receive got {}", refusal.name()));
        }
        println!(
            context,
            "[hostile-endpoint] thief receive error=missing-right ok"
        );
    }
    Ok(())
}

/// Try to receive on a call-only capability; the refusal must come at once
/// (a receive that is accepted instead would wait for, and steal, a call).
fn refused_receive(context: &mut Context, endpoint: CapabilityHandle) -> Result<Error, String> {
    static mut STOLEN: [u8; MESSAGE_MAX as usize] = [0; MESSAGE_MAX as usize];
    let ring = context.ring();
    let submission = Submission {
        opcode: Opcode::EndpointReceive as u16,
        flags: 0,
        capability: endpoint.0,
        user_data: 1,
        arguments: [
            core::ptr::addr_of_mut!(STOLEN) as u64,
            MESSAGE_MAX,
            0,
            0,
            0,
            0,
        ],
    };
    // SAFETY: STOLEN is a static nothing else reads or writes; if the
    // kernel wrongly accepted the receive, it may write there at any time,
    // which affects nothing.
    unsafe { ring.submit(submission) }.map_err(|_| String::from("ring full"))?;
    match ring.enter(1, RECEIVE_WAIT_NS) {
        Ok(_) => {}
        Err(Error::TimedOut) => return Err(String::from("receive accepted (still waiting)")),
        Err(error) => return Err(format!("enter {}", error.name())),
    }
    let completion = ring
        .next_completion()
        .ok_or_else(|| String::from("no completion"))?;
    match Error::from_result(completion.result) {
        Some(error) => Ok(error),
        None => Err(format!("receive accepted: result={}", completion.result)),
    }
}

/// One call whose reply must be `expected`.
fn call(
    context: &mut Context,
    endpoint: CapabilityHandle,
    message: &[u8],
    expected: &[u8],
) -> Result<(), String> {
    let mut reply = [0u8; 16];
    let (length, _) = context
        .ring()
        .endpoint_call(endpoint, message, None, &mut reply)
        .map_err(|error| format!("call {message:?} {}", error.name()))?;
    if &reply[..length.min(reply.len())] != expected {
        return Err(format!(
            "call {message:?} got {:?}",
            &reply[..length.min(16)]
        ));
    }
    Ok(())
}

fn timestamp() -> u64 {
    // SAFETY: RDTSC is allowed in user mode and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}
