//! Typed arguments of every ring operation, shared by the kernel's decoder
//! and the runtime's encoder so the two cannot drift.
//!
//! Each struct names the `Submission::arguments` words of one opcode in
//! order: `encode` writes field `i` to word `i` (unused words are 0) and
//! `decode` reads them back. Values are raw `u64`s; what is valid is decided
//! by the kernel (see `docs/abi.md`).

use crate::Opcode;

macro_rules! operation_arguments {
    ($(
        $(#[$meta:meta])*
        $name:ident for $opcode:ident { $($(#[$field_meta:meta])* $field:ident),* $(,)? }
    )*) => {$(
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: u64,)*
        }

        impl $name {
            /// The opcode these arguments belong to.
            pub const OPCODE: Opcode = Opcode::$opcode;

            /// The submission's argument words.
            pub fn encode(&self) -> [u64; 6] {
                let fields: &[u64] = &[$(self.$field),*];
                let mut words = [0u64; 6];
                words[..fields.len()].copy_from_slice(fields);
                words
            }

            /// Read the argument words of a submission.
            pub fn decode(words: &[u64; 6]) -> Self {
                let mut next = words.iter().copied();
                Self { $($field: next.next().unwrap_or(0),)* }
            }
        }
    )*};
}

operation_arguments! {
    /// `ConsoleWrite` on a Console.
    ConsoleWrite for ConsoleWrite { address, length }
    /// `Spawn` on a ProcessSpawner.
    Spawn for Spawn {
        name_address, name_length,
        /// Address of `u32` handles to grant the child.
        grants_address,
        grant_count,
    }
    /// `EndpointCall` on an endpoint capability.
    EndpointCall for EndpointCall {
        message_address, message_length,
        /// Handle to transfer, or `CapabilityHandle::NONE`.
        transfer,
        reply_address, reply_capacity,
    }
    /// `EndpointReceive` on an endpoint-server capability.
    EndpointReceive for EndpointReceive { buffer_address, buffer_capacity }
    /// `EndpointReply` on an endpoint-server capability.
    EndpointReply for EndpointReply {
        token, message_address, message_length,
        /// Handle to transfer, or `CapabilityHandle::NONE`.
        transfer,
    }
    /// `TimerSleep` on a Timer.
    TimerSleep for TimerSleep { nanoseconds }
    /// `ManifestRead` on a BootManifest.
    ManifestRead for ManifestRead { buffer_address, buffer_capacity, offset }
    /// `DiagnosticsRead` on a Diagnostics capability.
    DiagnosticsRead for DiagnosticsRead { buffer_address, buffer_capacity }
    /// `MeasureMark` on a Diagnostics capability.
    MeasureMark for MeasureMark {
        /// 0 spawn begins, 1 work begins, 2 shutdown begins, 3 end.
        mark,
    }
    /// `ThreadSpawn` on a ThreadSpawner.
    ThreadSpawn for ThreadSpawn {
        entry,
        /// 0: the kernel maps a stack with a guard page.
        stack_top,
        argument,
        /// FS base (user thread pointer).
        thread_pointer,
    }
    /// `Park` on a ParkSpace.
    Park for Park { address, expected, timeout_ns }
    /// `Unpark` on a ParkSpace.
    Unpark for Unpark { address, count }
    /// `MemoryMap` on a Memory capability.
    MemoryMap for MemoryMap {
        address, length,
        /// Bit 0: writable.
        flags,
    }
    /// `MemoryUnmap` on a Memory capability.
    MemoryUnmap for MemoryUnmap { address, length }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_map_to_words_in_order() {
        let call = EndpointCall {
            message_address: 1,
            message_length: 2,
            transfer: 3,
            reply_address: 4,
            reply_capacity: 5,
        };
        assert_eq!(call.encode(), [1, 2, 3, 4, 5, 0]);
        assert_eq!(EndpointCall::decode(&call.encode()), call);
        assert_eq!(TimerSleep { nanoseconds: 9 }.encode(), [9, 0, 0, 0, 0, 0]);
        assert_eq!(Park::decode(&[7, 8, 9, 10, 11, 12]).timeout_ns, 9);
        assert_eq!(ThreadSpawn::OPCODE, Opcode::ThreadSpawn);
        assert_eq!(MeasureMark { mark: 3 }.encode(), [3, 0, 0, 0, 0, 0]);
        assert_eq!(Opcode::from_number(20), Some(MeasureMark::OPCODE));
    }
}
