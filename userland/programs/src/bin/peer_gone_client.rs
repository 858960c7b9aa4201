//! `peer-gone-client`: calls a server that exits without replying; the call
//! must complete with `PeerGone` instead of waiting forever.
//! Slots: 0 console, 1 endpoint.
#![no_std]
#![no_main]

use capos_runtime::{println, Context, Error};

capos_runtime::entry!(main);

const ENDPOINT_SLOT: u16 = 1;

fn main(context: &mut Context) -> i32 {
    let endpoint = context.capability(ENDPOINT_SLOT);
    let mut reply = [0u8; 8];
    match context
        .ring()
        .endpoint_call(endpoint, b"hello?", None, &mut reply)
    {
        Err(Error::PeerGone) => {
            println!(context, "[peer-gone-client] call error=peer-gone ok");
            0
        }
        Err(error) => {
            println!(context, "[peer-gone-client] FAILED got={}", error.name());
            1
        }
        Ok((length, _)) => {
            println!(
                context,
                "[peer-gone-client] FAILED got=reply length {length}"
            );
            1
        }
    }
}
