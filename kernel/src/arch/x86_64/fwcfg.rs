//! Boot options from QEMU's fw_cfg file `opt/capos/cmdline` (`-fw_cfg
//! name=opt/capos/cmdline,string=...`), so one ISO serves every test mode.

use capos_kcore::fwcfg;
use x86_64::instructions::port::Port;

const SELECTOR_PORT: u16 = 0x510;
const DATA_PORT: u16 = 0x511;
const SIGNATURE_SELECTOR: u16 = 0x0000;
const CMDLINE_FILE: &str = "opt/capos/cmdline";
/// Longest boot option string kept.
pub const MAX_OPTIONS: usize = 256;

/// Boot options as text (empty when absent).
pub struct BootOptions {
    bytes: [u8; MAX_OPTIONS],
    length: usize,
}

impl BootOptions {
    /// The options; non-UTF-8 input reads as empty.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.length]).unwrap_or("")
    }
}

fn select(selector: u16) {
    // SAFETY: fw_cfg selector port; selecting an item has no other effect.
    unsafe { Port::<u16>::new(SELECTOR_PORT).write(selector) };
}

fn read_into(buffer: &mut [u8]) {
    let mut data = Port::<u8>::new(DATA_PORT);
    for byte in buffer {
        // SAFETY: reading fw_cfg data advances the item's cursor only.
        *byte = unsafe { data.read() };
    }
}

/// Read the boot options; empty if there is no fw_cfg device or no file.
pub fn boot_options() -> BootOptions {
    let mut options = BootOptions {
        bytes: [0; MAX_OPTIONS],
        length: 0,
    };
    let mut signature = [0u8; 4];
    select(SIGNATURE_SELECTOR);
    read_into(&mut signature);
    if &signature != b"QEMU" {
        return options;
    }
    let mut header = [0u8; fwcfg::DIRECTORY_HEADER_LEN];
    select(fwcfg::FILE_DIRECTORY_SELECTOR);
    read_into(&mut header);
    let count = fwcfg::directory_len(header);
    let mut entry = [0u8; fwcfg::DIRECTORY_HEADER_LEN + fwcfg::DIRECTORY_ENTRY_LEN];
    entry[..4].copy_from_slice(&1u32.to_be_bytes());
    for _ in 0..count {
        read_into(&mut entry[4..]);
        if let Ok(Some(file)) = fwcfg::find_file(&entry, CMDLINE_FILE) {
            let length = (file.size as usize).min(MAX_OPTIONS);
            select(file.select);
            read_into(&mut options.bytes[..length]);
            let text_end = options.bytes[..length]
                .iter()
                .position(|&b| b == 0)
                .unwrap_or(length);
            options.length = text_end;
            return options;
        }
    }
    options
}
