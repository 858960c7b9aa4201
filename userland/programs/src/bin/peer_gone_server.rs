//! `peer-gone-server`: receives one call and exits without replying, so the
//! kernel must answer the caller with `PeerGone`. Slots: 0 console, 1 endpoint.
#![no_std]
#![no_main]

use capos_abi::limits::MESSAGE_MAX;
use capos_runtime::{println, Context};

capos_runtime::entry!(main);

const ENDPOINT_SLOT: u16 = 1;

fn main(context: &mut Context) -> i32 {
    let endpoint = context.capability(ENDPOINT_SLOT);
    let mut buffer = [0u8; MESSAGE_MAX as usize];
    match context.ring().endpoint_receive(endpoint, &mut buffer) {
        Ok(_) => {
            println!(
                context,
                "[peer-gone-server] received; exiting without a reply"
            );
            0
        }
        Err(error) => {
            println!(
                context,
                "[peer-gone-server] error: receive {}",
                error.name()
            );
            1
        }
    }
}
