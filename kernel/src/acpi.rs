//! CPU discovery from the ACPI MADT: find the RSDP (multiboot2 tag, else the
//! BIOS area), walk the XSDT/RSDT, parse the MADT with `capos_kcore::acpi`.
//!
//! Firmware tables are untrusted input: any malformed table is reported and
//! the kernel continues with the boot CPU alone instead of guessing.

use crate::{kprintln, mem};
use alloc::vec::Vec;
use capos_kcore::acpi::{self, AcpiError, RSDP_V1_LEN, RSDP_V2_LEN, SDT_HEADER_LEN};
use multiboot2::BootInformation;

/// Default xAPIC register base when no MADT says otherwise.
const DEFAULT_LOCAL_APIC: u64 = 0xFEE0_0000;
/// Largest table the kernel will read.
const MAX_TABLE_LEN: usize = 1 << 20;

/// CPUs the firmware lists, in MADT order.
pub struct CpuTopology {
    pub local_apic_address: u64,
    /// APIC ids of usable CPUs (enabled or online-capable); may be empty
    /// when firmware tables were missing or malformed.
    pub apic_ids: Vec<u32>,
}

/// Discover usable CPUs; falls back to the boot CPU only, with a reason.
pub fn discover_cpus(boot_info: &BootInformation) -> CpuTopology {
    match read_madt(boot_info) {
        Ok(topology) => {
            kprintln!(
                "[acpi] madt cpus={} local_apic={:#x}",
                topology.apic_ids.len(),
                topology.local_apic_address
            );
            topology
        }
        Err(reason) => {
            kprintln!("[acpi] warning: {reason}; continuing with the boot CPU only");
            CpuTopology {
                local_apic_address: DEFAULT_LOCAL_APIC,
                apic_ids: Vec::new(),
            }
        }
    }
}

/// Why CPU discovery failed.
enum DiscoveryError {
    NoRsdp,
    Table(AcpiError),
    OutOfWindow(u64),
    NoMadt,
}

impl core::fmt::Display for DiscoveryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoRsdp => f.write_str("no ACPI RSDP found"),
            Self::Table(error) => write!(f, "malformed ACPI table: {error}"),
            Self::OutOfWindow(address) => {
                write!(f, "ACPI table at {address:#x} is outside mapped memory")
            }
            Self::NoMadt => f.write_str("no MADT (APIC) table"),
        }
    }
}

impl From<AcpiError> for DiscoveryError {
    fn from(error: AcpiError) -> Self {
        Self::Table(error)
    }
}

fn read_madt(boot_info: &BootInformation) -> Result<CpuTopology, DiscoveryError> {
    let rsdp = acpi::parse_rsdp(rsdp_bytes(boot_info).ok_or(DiscoveryError::NoRsdp)?)?;
    let root = rsdp.root_table();
    let root_bytes = table_at(root.address, root.signature)?;
    for address in acpi::root_table_entries(root_bytes, root.entry_size) {
        let header = acpi::read_sdt_header(physical(address, SDT_HEADER_LEN)?)?;
        if header.signature != *b"APIC" {
            continue;
        }
        let madt = acpi::parse_madt(table_at(address, *b"APIC")?)?;
        return Ok(CpuTopology {
            local_apic_address: madt.local_apic_address,
            apic_ids: madt.usable_cpus().map(|cpu| cpu.apic_id).collect(),
        });
    }
    Err(DiscoveryError::NoMadt)
}

/// A validated table of `signature` at physical `address`.
fn table_at(address: u64, signature: [u8; 4]) -> Result<&'static [u8], DiscoveryError> {
    let header = acpi::read_sdt_header(physical(address, SDT_HEADER_LEN)?)?;
    let length = (header.length as usize).min(MAX_TABLE_LEN);
    Ok(acpi::validate_table(physical(address, length)?, signature)?)
}

fn physical(address: u64, length: usize) -> Result<&'static [u8], DiscoveryError> {
    mem::physical_slice(address, length).ok_or(DiscoveryError::OutOfWindow(address))
}

/// The RSDP copy in the multiboot2 tags, else a scan of the BIOS area.
fn rsdp_bytes(boot_info: &BootInformation) -> Option<&'static [u8]> {
    const TAG_HEADER_LEN: usize = 8;
    if let Some(tag) = boot_info.rsdp_v2_tag() {
        let start = tag as *const _ as *const u8;
        // SAFETY: the tag holds a full v2 RSDP after its 8-byte header and
        // lives in the boot information, mapped for the kernel's lifetime.
        return Some(unsafe {
            core::slice::from_raw_parts(start.add(TAG_HEADER_LEN), RSDP_V2_LEN)
        });
    }
    if let Some(tag) = boot_info.rsdp_v1_tag() {
        let start = tag as *const _ as *const u8;
        // SAFETY: as above, for the 20-byte v1 RSDP.
        return Some(unsafe {
            core::slice::from_raw_parts(start.add(TAG_HEADER_LEN), RSDP_V1_LEN)
        });
    }
    let bios_area = mem::physical_slice(0xE0000, 0x20000)?;
    (0..bios_area.len() - RSDP_V2_LEN)
        .step_by(16)
        .find(|&offset| &bios_area[offset..offset + 8] == b"RSD PTR ")
        .map(|offset| &bios_area[offset..offset + RSDP_V2_LEN])
}
