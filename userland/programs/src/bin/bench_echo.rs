//! `bench-echo`: answers calls on its endpoint with the message reversed
//! until an empty message arrives. Slots: 0 console, 1 endpoint.
#![no_std]
#![no_main]

use capos_abi::limits::MESSAGE_MAX;
use capos_runtime::{println, Context};

capos_runtime::entry!(main);

const ENDPOINT_SLOT: u16 = 1;

fn main(context: &mut Context) -> i32 {
    let endpoint = context.capability(ENDPOINT_SLOT);
    let mut buffer = [0u8; MESSAGE_MAX as usize];
    loop {
        let received = match context.ring().endpoint_receive(endpoint, &mut buffer) {
            Ok(received) => received,
            Err(error) => {
                println!(context, "[bench-echo] error: receive {}", error.name());
                return 1;
            }
        };
        let message = &mut buffer[..received.length.min(MESSAGE_MAX as usize)];
        message.reverse();
        let stop = message.is_empty();
        if let Err(error) = context
            .ring()
            .endpoint_reply(endpoint, received.token, message, None)
        {
            println!(context, "[bench-echo] error: reply {}", error.name());
            return 1;
        }
        if stop {
            return 0;
        }
    }
}
