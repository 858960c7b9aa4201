//! `endpoint-server`: answers three calls on its endpoint with the message
//! reversed; the third reply also transfers its console capability to the
//! caller. Slots: 0 console, 1 endpoint.
//!
//! Prints `[endpoint-server] served=3` before sending the third reply (the
//! transfer may move the console away), or `[endpoint-server] error: ...`
//! and exits 1.
#![no_std]
#![no_main]

use capos_abi::limits::MESSAGE_MAX;
use capos_runtime::{println, Context, Error};

capos_runtime::entry!(main);

const ENDPOINT_SLOT: u16 = 1;
const CALLS: u32 = 3;

fn main(context: &mut Context) -> i32 {
    match serve(context) {
        Ok(()) => 0,
        Err((operation, call, error)) => {
            println!(
                context,
                "[endpoint-server] error: {operation} call={call} {}",
                error.name()
            );
            1
        }
    }
}

fn serve(context: &mut Context) -> Result<(), (&'static str, u32, Error)> {
    let endpoint = context.capability(ENDPOINT_SLOT);
    let console = context.capability(0);
    for call in 1..=CALLS {
        let mut buffer = [0u8; MESSAGE_MAX as usize];
        let received = context
            .ring()
            .endpoint_receive(endpoint, &mut buffer)
            .map_err(|error| ("receive", call, error))?;
        if received.transferred.is_some() {
            return Err(("unexpected-transfer", call, Error::InvalidArgument));
        }
        let message = &mut buffer[..received.length.min(MESSAGE_MAX as usize)];
        message.reverse();
        let transfer = (call == CALLS).then_some(console);
        if call == CALLS {
            println!(context, "[endpoint-server] served={CALLS}");
        }
        context
            .ring()
            .endpoint_reply(endpoint, received.token, message, transfer)
            .map_err(|error| ("reply", call, error))?;
    }
    Ok(())
}
