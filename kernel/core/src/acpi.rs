//! ACPI table parsing from byte slices: RSDP, SDT headers, RSDT/XSDT entries and the MADT.
//!
//! Invariants:
//! - Every parser takes an untrusted byte slice and returns an [`AcpiError`] instead of
//!   panicking or reading out of bounds, whatever the bytes are.
//! - A table is trusted only after [`validate_table`]: its length field lies within the slice
//!   and is at least a header long, its bytes sum to zero and its signature is the expected one.
//! - Multi-byte fields are little-endian, as ACPI specifies.
//! - [`MadtInfo`] never records more than [`MAX_CPUS`] processors; only `cpus[..cpu_count]`
//!   is meaningful.

use core::fmt;

use crate::bytes::{
    field, little_endian, read_signature, read_u32_le, read_u64_le, read_u8, wrapping_sum,
};

/// Length of the common system description table header.
pub const SDT_HEADER_LEN: usize = 36;
/// Length of an ACPI 1.0 RSDP, the part covered by its first checksum.
pub const RSDP_V1_LEN: usize = 20;
/// Length of an ACPI 2.0+ RSDP.
pub const RSDP_V2_LEN: usize = 36;
/// Maximum number of processors [`parse_madt`] records.
pub const MAX_CPUS: usize = 64;

/// Name used for the RSDP in errors (it has no 4-byte table signature).
const RSDP_NAME: [u8; 4] = *b"RSDP";
/// The 8-byte RSDP signature.
const RSDP_SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// MADT table signature.
const MADT_SIGNATURE: [u8; 4] = *b"APIC";
/// Offset of the first interrupt controller structure in the MADT.
const MADT_ENTRIES_OFFSET: usize = 44;

/// Why an ACPI structure was rejected.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum AcpiError {
    /// The slice is shorter than the structure needs (map `need` bytes and retry).
    TooShort {
        /// Signature of the table being read (`RSDP` for the RSDP).
        table: [u8; 4],
        /// Bytes required.
        need: usize,
        /// Bytes provided.
        have: usize,
    },
    /// The signature is not the expected one.
    BadSignature {
        /// Signature the caller asked for.
        expected: [u8; 4],
        /// Signature present in the bytes.
        found: [u8; 4],
    },
    /// The bytes covered by the checksum do not sum to zero.
    BadChecksum {
        /// Signature of the failing table.
        table: [u8; 4],
    },
    /// The length field is smaller than the structure's fixed part.
    BadLength {
        /// Signature of the failing table.
        table: [u8; 4],
        /// The length field's value.
        length: u32,
    },
    /// A MADT entry is shorter than 2 bytes, shorter than its type needs, or runs past the end.
    MalformedEntry {
        /// Byte offset of the entry inside the table.
        offset: usize,
    },
    /// The MADT lists more processors than [`MAX_CPUS`].
    TooManyCpus {
        /// Number of processors that can be recorded.
        capacity: usize,
    },
}

/// Formats a signature as text, replacing non-printable bytes with `?`.
struct Signature([u8; 4]);

impl fmt::Display for Signature {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|&byte| {
            let shown = if byte.is_ascii_graphic() || byte == b' ' {
                char::from(byte)
            } else {
                '?'
            };
            write!(formatter, "{shown}")
        })
    }
}

impl fmt::Display for AcpiError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::TooShort { table, need, have } => write!(
                formatter,
                "ACPI {} needs {need} bytes but only {have} are available",
                Signature(table)
            ),
            Self::BadSignature { expected, found } => write!(
                formatter,
                "expected ACPI signature {} but found {}",
                Signature(expected),
                Signature(found)
            ),
            Self::BadChecksum { table } => {
                write!(formatter, "ACPI {} checksum mismatch", Signature(table))
            }
            Self::BadLength { table, length } => write!(
                formatter,
                "ACPI {} length {length} is too small",
                Signature(table)
            ),
            Self::MalformedEntry { offset } => {
                write!(formatter, "malformed MADT entry at offset {offset}")
            }
            Self::TooManyCpus { capacity } => {
                write!(formatter, "MADT lists more than {capacity} processors")
            }
        }
    }
}

/// Root System Description Pointer: where the RSDT and XSDT live.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Rsdp {
    /// 0 for ACPI 1.0, 2 or more for ACPI 2.0+.
    pub revision: u8,
    /// Physical address of the RSDT (4-byte entries).
    pub rsdt_address: u32,
    /// Physical address of the XSDT (8-byte entries), when revision >= 2 and non-zero.
    pub xsdt_address: Option<u64>,
}

/// Which root table to walk and how wide its entries are.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct RootTable {
    /// Physical address of the table.
    pub address: u64,
    /// Expected signature: `XSDT` or `RSDT`.
    pub signature: [u8; 4],
    /// Entry width to pass to [`root_table_entries`].
    pub entry_size: usize,
}

impl Rsdp {
    /// The preferred root table: the XSDT when present, otherwise the RSDT.
    pub fn root_table(&self) -> RootTable {
        match self.xsdt_address {
            Some(address) => RootTable {
                address,
                signature: *b"XSDT",
                entry_size: 8,
            },
            None => RootTable {
                address: u64::from(self.rsdt_address),
                signature: *b"RSDT",
                entry_size: 4,
            },
        }
    }
}

/// Parse an RSDP ("RSD PTR "), v1 (20 bytes checksum) or v2+ (extended checksum over
/// `length`). xsdt_address only when revision >= 2 and non-zero.
///
/// A signature mismatch reports the 4-byte half of "RSD PTR " that differs.
pub fn parse_rsdp(bytes: &[u8]) -> Result<Rsdp, AcpiError> {
    let v1 = require(bytes, RSDP_NAME, RSDP_V1_LEN)?;
    check_rsdp_signature(v1)?;
    check_sum(v1, RSDP_NAME)?;
    let revision = read_u8(v1, 15).unwrap_or(0);
    let rsdt_address = read_u32_le(v1, 16).unwrap_or(0);
    let xsdt_address = if revision >= 2 {
        parse_rsdp_extension(bytes)?
    } else {
        None
    };
    Ok(Rsdp {
        revision,
        rsdt_address,
        xsdt_address,
    })
}

/// The first `need` bytes of `bytes`, or `TooShort` naming `table`.
fn require(bytes: &[u8], table: [u8; 4], need: usize) -> Result<&[u8], AcpiError> {
    bytes.get(..need).ok_or(AcpiError::TooShort {
        table,
        need,
        have: bytes.len(),
    })
}

/// Compare both halves of the 8-byte RSDP signature.
fn check_rsdp_signature(bytes: &[u8]) -> Result<(), AcpiError> {
    for offset in [0, 4] {
        let expected = read_signature(RSDP_SIGNATURE, offset).unwrap_or_default();
        let found = read_signature(bytes, offset).unwrap_or_default();
        if found != expected {
            return Err(AcpiError::BadSignature { expected, found });
        }
    }
    Ok(())
}

/// `BadChecksum` for `table` unless `bytes` sum to zero.
fn check_sum(bytes: &[u8], table: [u8; 4]) -> Result<(), AcpiError> {
    if wrapping_sum(bytes) == 0 {
        Ok(())
    } else {
        Err(AcpiError::BadChecksum { table })
    }
}

/// Validate the ACPI 2.0+ part of the RSDP and return its XSDT address.
fn parse_rsdp_extension(bytes: &[u8]) -> Result<Option<u64>, AcpiError> {
    let fixed = require(bytes, RSDP_NAME, RSDP_V2_LEN)?;
    let length = read_u32_le(fixed, 20).unwrap_or(0);
    let whole = checked_length(bytes, RSDP_NAME, length, RSDP_V2_LEN)?;
    check_sum(whole, RSDP_NAME)?;
    let xsdt = read_u64_le(fixed, 24).unwrap_or(0);
    Ok((xsdt != 0).then_some(xsdt))
}

/// `bytes` cut to the structure's `length` field, which must be at least `minimum` and fit.
fn checked_length(
    bytes: &[u8],
    table: [u8; 4],
    length: u32,
    minimum: usize,
) -> Result<&[u8], AcpiError> {
    let need = usize::try_from(length).map_err(|_| AcpiError::BadLength { table, length })?;
    if need < minimum {
        return Err(AcpiError::BadLength { table, length });
    }
    require(bytes, table, need)
}

/// The common header at the start of every system description table.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct SdtHeader {
    /// Four-character table signature, e.g. `APIC`.
    pub signature: [u8; 4],
    /// Length of the whole table in bytes, header included.
    pub length: u32,
    /// Table revision.
    pub revision: u8,
}

/// Read the 36-byte header (without checking checksum) so the caller learns how many bytes
/// to map.
///
/// When fewer than 36 bytes are given, `TooShort` names whatever signature bytes exist
/// (zero-padded).
pub fn read_sdt_header(bytes: &[u8]) -> Result<SdtHeader, AcpiError> {
    let signature = partial_signature(bytes);
    let header = require(bytes, signature, SDT_HEADER_LEN)?;
    Ok(SdtHeader {
        signature,
        length: read_u32_le(header, 4).unwrap_or(0),
        revision: read_u8(header, 8).unwrap_or(0),
    })
}

/// The first four bytes of `bytes`, zero-padded when the slice is shorter.
fn partial_signature(bytes: &[u8]) -> [u8; 4] {
    let mut signature = [0; 4];
    signature
        .iter_mut()
        .zip(bytes)
        .for_each(|(slot, &byte)| *slot = byte);
    signature
}

/// Validate a whole table: length field <= bytes.len(), >= 36, checksum of `length` bytes ==
/// 0, signature matches `expected`. Returns the table sliced to its length.
///
/// Checks run in this order: header present (`TooShort`), signature (`BadSignature`), length
/// below 36 (`BadLength`), length beyond the slice (`TooShort` with `need` = length), checksum
/// (`BadChecksum`).
pub fn validate_table(bytes: &[u8], expected: [u8; 4]) -> Result<&[u8], AcpiError> {
    let header = read_sdt_header(bytes)?;
    if header.signature != expected {
        return Err(AcpiError::BadSignature {
            expected,
            found: header.signature,
        });
    }
    let table = checked_length(bytes, expected, header.length, SDT_HEADER_LEN)?;
    check_sum(table, expected)?;
    Ok(table)
}

/// Iterate the physical addresses listed in an RSDT (4-byte entries) or XSDT (8-byte) —
/// validated table input.
///
/// Yields nothing for an `entry_size` other than 4 or 8. Entries are read up to the table's
/// length field when it lies inside the slice; a trailing partial entry is ignored.
pub fn root_table_entries(table: &[u8], entry_size: usize) -> impl Iterator<Item = u64> + '_ {
    let body = match entry_size {
        4 | 8 => table_body(table),
        _ => &[],
    };
    body.chunks_exact(entry_size.clamp(4, 8)).map(little_endian)
}

/// The bytes after the header, up to the length field when it is plausible.
fn table_body(table: &[u8]) -> &[u8] {
    let declared = read_u32_le(table, 4)
        .and_then(|length| usize::try_from(length).ok())
        .filter(|&length| length <= table.len())
        .unwrap_or(table.len());
    table.get(SDT_HEADER_LEN..declared).unwrap_or(&[])
}

/// One processor listed in the MADT (local APIC or x2APIC entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MadtCpu {
    /// ACPI processor UID, matching the processor object in the namespace.
    pub processor_uid: u32,
    /// Local APIC or x2APIC ID.
    pub apic_id: u32,
    /// Flags bit 0: the processor is ready to use.
    pub enabled: bool,
    /// Flags bit 1: the processor can be brought online later.
    pub online_capable: bool,
}

impl MadtCpu {
    /// An all-zero placeholder for unused slots.
    const EMPTY: Self = Self {
        processor_uid: 0,
        apic_id: 0,
        enabled: false,
        online_capable: false,
    };

    /// Build a processor from its IDs and the MADT flags word.
    fn from_flags(processor_uid: u32, apic_id: u32, flags: u32) -> Self {
        Self {
            processor_uid,
            apic_id,
            enabled: flags & 1 != 0,
            online_capable: flags & 2 != 0,
        }
    }

    /// Whether the processor may be started (enabled or online capable).
    pub fn is_usable(&self) -> bool {
        self.enabled || self.online_capable
    }
}

/// What the kernel needs from the MADT to bring up interrupts and other processors.
#[derive(Clone, PartialEq, Eq)]
pub struct MadtInfo {
    /// Physical address of the local APIC (64-bit override applied).
    pub local_apic_address: u64,
    /// Flags bit 0: a dual 8259 PIC is installed and must be masked.
    pub pcat_compatible: bool,
    /// Processor slots; only `cpus[..cpu_count]` are meaningful.
    cpus: [MadtCpu; MAX_CPUS],
    /// Number of processors recorded.
    cpu_count: usize,
    /// Physical address of the first I/O APIC listed, if any.
    pub io_apic_address: Option<u64>,
}

impl fmt::Debug for MadtInfo {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("MadtInfo")
            .field("local_apic_address", &self.local_apic_address)
            .field("pcat_compatible", &self.pcat_compatible)
            .field("cpus", &self.cpus())
            .field("io_apic_address", &self.io_apic_address)
            .finish()
    }
}

impl MadtInfo {
    /// Every processor listed, in table order.
    pub fn cpus(&self) -> &[MadtCpu] {
        self.cpus.get(..self.cpu_count).unwrap_or(&[])
    }

    /// enabled or online-capable CPUs, in table order
    pub fn usable_cpus(&self) -> impl Iterator<Item = &MadtCpu> {
        self.cpus().iter().filter(|cpu| cpu.is_usable())
    }

    /// Append a processor, failing once [`MAX_CPUS`] are recorded.
    fn push_cpu(&mut self, cpu: MadtCpu) -> Result<(), AcpiError> {
        let slot = self
            .cpus
            .get_mut(self.cpu_count)
            .ok_or(AcpiError::TooManyCpus { capacity: MAX_CPUS })?;
        *slot = cpu;
        self.cpu_count += 1;
        Ok(())
    }
}

/// MADT interrupt controller structure types this parser understands.
mod entry_type {
    /// Processor local APIC.
    pub const LOCAL_APIC: u8 = 0;
    /// I/O APIC.
    pub const IO_APIC: u8 = 1;
    /// 64-bit local APIC address override.
    pub const LOCAL_APIC_ADDRESS_OVERRIDE: u8 = 5;
    /// Processor local x2APIC.
    pub const LOCAL_X2APIC: u8 = 9;
}

/// Parse a validated "APIC" table: entry type 0 (processor local APIC: flags bit0 enabled, bit1
/// online capable), type 9 (x2APIC), type 5 (64-bit LAPIC address override), type 1 (first I/O
/// APIC). Unknown types skipped by their length; entry length < 2 or running past the end ->
/// MalformedEntry.
///
/// The checksum is not rechecked, but the signature and length field are: the table is cut to
/// its length field, which must fit in the slice (`TooShort`) and cover the fixed 44-byte part
/// (`BadLength`). A known entry shorter than its type's layout is also `MalformedEntry`.
/// Disabled processors count toward [`MAX_CPUS`].
pub fn parse_madt(table: &[u8]) -> Result<MadtInfo, AcpiError> {
    let table = madt_bytes(table)?;
    let mut info = MadtInfo {
        local_apic_address: u64::from(read_u32_le(table, 36).unwrap_or(0)),
        pcat_compatible: read_u32_le(table, 40).unwrap_or(0) & 1 != 0,
        cpus: [MadtCpu::EMPTY; MAX_CPUS],
        cpu_count: 0,
        io_apic_address: None,
    };
    let mut offset = MADT_ENTRIES_OFFSET;
    while offset < table.len() {
        let entry = madt_entry(table, offset)?;
        apply_madt_entry(&mut info, entry, offset)?;
        offset += entry.len();
    }
    Ok(info)
}

/// The MADT cut to its length field, after checking signature and fixed-part length.
fn madt_bytes(table: &[u8]) -> Result<&[u8], AcpiError> {
    let header = read_sdt_header(table)?;
    if header.signature != MADT_SIGNATURE {
        return Err(AcpiError::BadSignature {
            expected: MADT_SIGNATURE,
            found: header.signature,
        });
    }
    checked_length(table, MADT_SIGNATURE, header.length, MADT_ENTRIES_OFFSET)
}

/// The entry at `offset`: type byte, length byte and body, bounded by the table end.
fn madt_entry(table: &[u8], offset: usize) -> Result<&[u8], AcpiError> {
    let malformed = AcpiError::MalformedEntry { offset };
    let length = read_u8(table, offset.saturating_add(1)).ok_or(malformed)?;
    if length < 2 {
        return Err(malformed);
    }
    field(table, offset, usize::from(length)).ok_or(malformed)
}

/// Record what one MADT entry says; `offset` is only used for error reports.
fn apply_madt_entry(info: &mut MadtInfo, entry: &[u8], offset: usize) -> Result<(), AcpiError> {
    let malformed = AcpiError::MalformedEntry { offset };
    match read_u8(entry, 0) {
        Some(entry_type::LOCAL_APIC) => {
            let uid = read_u8(entry, 2).ok_or(malformed)?;
            let apic_id = read_u8(entry, 3).ok_or(malformed)?;
            let flags = read_u32_le(entry, 4).ok_or(malformed)?;
            info.push_cpu(MadtCpu::from_flags(uid.into(), apic_id.into(), flags))
        }
        Some(entry_type::LOCAL_X2APIC) => {
            let apic_id = read_u32_le(entry, 4).ok_or(malformed)?;
            let flags = read_u32_le(entry, 8).ok_or(malformed)?;
            let uid = read_u32_le(entry, 12).ok_or(malformed)?;
            info.push_cpu(MadtCpu::from_flags(uid, apic_id, flags))
        }
        Some(entry_type::LOCAL_APIC_ADDRESS_OVERRIDE) => {
            info.local_apic_address = read_u64_le(entry, 4).ok_or(malformed)?;
            Ok(())
        }
        Some(entry_type::IO_APIC) => {
            let address = read_u32_le(entry, 4).ok_or(malformed)?;
            info.io_apic_address.get_or_insert(u64::from(address));
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Set byte `checksum_offset` so that `bytes[..covered]` sums to zero.
    fn fix_checksum(bytes: &mut [u8], checksum_offset: usize, covered: usize) {
        bytes[checksum_offset] = 0;
        let sum = wrapping_sum(&bytes[..covered]);
        bytes[checksum_offset] = 0u8.wrapping_sub(sum);
    }

    fn rsdp_v1(rsdt: u32) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RSD PTR ");
        bytes.push(0); // checksum
        bytes.extend_from_slice(b"CAPOS ");
        bytes.push(0); // revision
        bytes.extend_from_slice(&rsdt.to_le_bytes());
        fix_checksum(&mut bytes, 8, RSDP_V1_LEN);
        bytes
    }

    fn rsdp_v2(rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut bytes = rsdp_v1(rsdt);
        bytes[15] = 2;
        bytes.extend_from_slice(&36u32.to_le_bytes());
        bytes.extend_from_slice(&xsdt.to_le_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 0]); // extended checksum + reserved
        fix_checksum(&mut bytes, 8, RSDP_V1_LEN);
        fix_checksum(&mut bytes, 32, RSDP_V2_LEN);
        bytes
    }

    /// A table with a valid header around `body`.
    fn table(signature: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let length = (SDT_HEADER_LEN + body.len()) as u32;
        let mut bytes = Vec::new();
        bytes.extend_from_slice(signature);
        bytes.extend_from_slice(&length.to_le_bytes());
        bytes.push(3); // revision
        bytes.push(0); // checksum
        bytes.extend_from_slice(b"CAPOS CAPOSTBL");
        bytes.extend_from_slice(&[0; 12]); // OEM revision, creator ID, creator revision
        bytes.extend_from_slice(body);
        let covered = bytes.len();
        fix_checksum(&mut bytes, 9, covered);
        bytes
    }

    fn local_apic(uid: u8, apic_id: u8, flags: u32) -> Vec<u8> {
        let mut entry = vec![0, 8, uid, apic_id];
        entry.extend_from_slice(&flags.to_le_bytes());
        entry
    }

    fn x2apic(uid: u32, apic_id: u32, flags: u32) -> Vec<u8> {
        let mut entry = vec![9, 16, 0, 0];
        entry.extend_from_slice(&apic_id.to_le_bytes());
        entry.extend_from_slice(&flags.to_le_bytes());
        entry.extend_from_slice(&uid.to_le_bytes());
        entry
    }

    fn io_apic(id: u8, address: u32) -> Vec<u8> {
        let mut entry = vec![1, 12, id, 0];
        entry.extend_from_slice(&address.to_le_bytes());
        entry.extend_from_slice(&0u32.to_le_bytes());
        entry
    }

    fn lapic_override(address: u64) -> Vec<u8> {
        let mut entry = vec![5, 12, 0, 0];
        entry.extend_from_slice(&address.to_le_bytes());
        entry
    }

    fn madt(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&0xfee0_0000u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        for entry in entries {
            body.extend_from_slice(entry);
        }
        table(b"APIC", &body)
    }

    #[test]
    fn rsdp_v1_parses() {
        let rsdp = parse_rsdp(&rsdp_v1(0x000e_0000)).unwrap();
        assert_eq!(
            rsdp,
            Rsdp {
                revision: 0,
                rsdt_address: 0x000e_0000,
                xsdt_address: None
            }
        );
        assert_eq!(rsdp.root_table().signature, *b"RSDT");
        assert_eq!(rsdp.root_table().entry_size, 4);
    }

    #[test]
    fn rsdp_v2_parses_xsdt() {
        let rsdp = parse_rsdp(&rsdp_v2(0x1000, 0x1_2345_6000)).unwrap();
        assert_eq!(rsdp.revision, 2);
        assert_eq!(rsdp.xsdt_address, Some(0x1_2345_6000));
        let root = rsdp.root_table();
        assert_eq!(root.address, 0x1_2345_6000);
        assert_eq!(root.signature, *b"XSDT");
        assert_eq!(root.entry_size, 8);
        let zero_xsdt = parse_rsdp(&rsdp_v2(0x1000, 0)).unwrap();
        assert_eq!(zero_xsdt.xsdt_address, None);
        assert_eq!(zero_xsdt.root_table().address, 0x1000);
    }

    #[test]
    fn rsdp_rejects_bad_input() {
        assert_eq!(
            parse_rsdp(&[0; 10]),
            Err(AcpiError::TooShort {
                table: *b"RSDP",
                need: 20,
                have: 10
            })
        );
        let mut wrong = rsdp_v1(0x1000);
        wrong[5] = b'X';
        assert_eq!(
            parse_rsdp(&wrong),
            Err(AcpiError::BadSignature {
                expected: *b"PTR ",
                found: *b"PXR "
            })
        );
        let mut corrupt = rsdp_v1(0x1000);
        corrupt[17] ^= 1;
        assert_eq!(
            parse_rsdp(&corrupt),
            Err(AcpiError::BadChecksum { table: *b"RSDP" })
        );
    }

    #[test]
    fn rsdp_v2_rejects_bad_extension() {
        let good = rsdp_v2(0x1000, 0x2000);
        assert_eq!(
            parse_rsdp(&good[..30]),
            Err(AcpiError::TooShort {
                table: *b"RSDP",
                need: 36,
                have: 30
            })
        );
        let mut corrupt = good.clone();
        corrupt[25] ^= 1;
        assert_eq!(
            parse_rsdp(&corrupt),
            Err(AcpiError::BadChecksum { table: *b"RSDP" })
        );
        let mut short_length = good.clone();
        short_length[20] = 20;
        fix_checksum(&mut short_length, 32, 36);
        assert_eq!(
            parse_rsdp(&short_length),
            Err(AcpiError::BadLength {
                table: *b"RSDP",
                length: 20
            })
        );
        let mut long_length = good;
        long_length[20] = 40;
        assert_eq!(
            parse_rsdp(&long_length),
            Err(AcpiError::TooShort {
                table: *b"RSDP",
                need: 40,
                have: 36
            })
        );
    }

    #[test]
    fn sdt_header_reads_without_checksum() {
        let mut bytes = table(b"FACP", &[1, 2, 3, 4]);
        bytes[9] ^= 0xff;
        let header = read_sdt_header(&bytes[..36]).unwrap();
        assert_eq!(
            header,
            SdtHeader {
                signature: *b"FACP",
                length: 40,
                revision: 3
            }
        );
        assert_eq!(
            read_sdt_header(&bytes[..6]),
            Err(AcpiError::TooShort {
                table: *b"FACP",
                need: 36,
                have: 6
            })
        );
        assert_eq!(
            read_sdt_header(b"AP"),
            Err(AcpiError::TooShort {
                table: [b'A', b'P', 0, 0],
                need: 36,
                have: 2
            })
        );
    }

    #[test]
    fn validate_table_accepts_and_slices() {
        let mut bytes = table(b"HPET", &[9; 20]);
        let length = bytes.len();
        bytes.extend_from_slice(&[0xaa; 100]); // mapping larger than the table
        let validated = validate_table(&bytes, *b"HPET").unwrap();
        assert_eq!(validated.len(), length);
    }

    #[test]
    fn validate_table_rejects_bad_tables() {
        let good = table(b"HPET", &[9; 20]);
        assert_eq!(
            validate_table(&good, *b"APIC"),
            Err(AcpiError::BadSignature {
                expected: *b"APIC",
                found: *b"HPET"
            })
        );
        assert_eq!(
            validate_table(&good[..50], *b"HPET"),
            Err(AcpiError::TooShort {
                table: *b"HPET",
                need: 56,
                have: 50
            })
        );
        let mut corrupt = good.clone();
        corrupt[40] ^= 0x10;
        assert_eq!(
            validate_table(&corrupt, *b"HPET"),
            Err(AcpiError::BadChecksum { table: *b"HPET" })
        );
        let mut tiny = good;
        tiny[4..8].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(
            validate_table(&tiny, *b"HPET"),
            Err(AcpiError::BadLength {
                table: *b"HPET",
                length: 10
            })
        );
    }

    #[test]
    fn root_table_entries_rsdt_and_xsdt() {
        let mut body = Vec::new();
        for address in [0x1000u32, 0xdead_b000] {
            body.extend_from_slice(&address.to_le_bytes());
        }
        let rsdt = table(b"RSDT", &body);
        let entries: Vec<u64> = root_table_entries(&rsdt, 4).collect();
        assert_eq!(entries, vec![0x1000, 0xdead_b000]);

        let mut body = Vec::new();
        for address in [0x1_0000_0000u64, 0x2000, 0x3000] {
            body.extend_from_slice(&address.to_le_bytes());
        }
        body.extend_from_slice(&[1, 2, 3]); // trailing partial entry
        let xsdt = table(b"XSDT", &body);
        let entries: Vec<u64> = root_table_entries(&xsdt, 8).collect();
        assert_eq!(entries, vec![0x1_0000_0000, 0x2000, 0x3000]);
    }

    #[test]
    fn root_table_entries_tolerates_odd_input() {
        let rsdt = table(b"RSDT", &[1, 0, 0, 0]);
        assert_eq!(root_table_entries(&rsdt, 0).count(), 0);
        assert_eq!(root_table_entries(&rsdt, 5).count(), 0);
        assert_eq!(root_table_entries(&rsdt[..10], 4).count(), 0);
        let mut padded = rsdt.clone();
        padded.extend_from_slice(&[2, 0, 0, 0]); // beyond the length field
        assert_eq!(root_table_entries(&padded, 4).collect::<Vec<_>>(), vec![1]);
    }

    #[test]
    fn madt_parses_processors_and_io_apic() {
        let table = madt(&[
            local_apic(0, 0, 1),
            local_apic(1, 2, 0),
            local_apic(2, 4, 2),
            vec![0x7f, 6, 1, 2, 3, 4], // unknown type, skipped
            io_apic(0, 0xfec0_0000),
            io_apic(1, 0xfec1_0000),
            x2apic(300, 0x1_0000, 1),
        ]);
        let info = parse_madt(&table).unwrap();
        assert_eq!(info.local_apic_address, 0xfee0_0000);
        assert!(info.pcat_compatible);
        assert_eq!(info.io_apic_address, Some(0xfec0_0000));
        assert_eq!(info.cpus().len(), 4);
        assert_eq!(
            info.cpus()[3],
            MadtCpu {
                processor_uid: 300,
                apic_id: 0x1_0000,
                enabled: true,
                online_capable: false
            }
        );
        let usable: Vec<u32> = info.usable_cpus().map(|cpu| cpu.apic_id).collect();
        assert_eq!(usable, vec![0, 4, 0x1_0000]);
        assert!(info.cpus()[2].online_capable);
        assert!(!info.cpus()[2].enabled);
        assert!(format!("{info:?}").contains("MadtInfo"));
    }

    #[test]
    fn madt_applies_address_override() {
        let table = madt(&[lapic_override(0x1_fee0_0000), local_apic(0, 0, 1)]);
        let info = parse_madt(&table).unwrap();
        assert_eq!(info.local_apic_address, 0x1_fee0_0000);
        assert_eq!(info.io_apic_address, None);
    }

    #[test]
    fn madt_without_entries() {
        let info = parse_madt(&madt(&[])).unwrap();
        assert!(info.cpus().is_empty());
        assert_eq!(info.usable_cpus().count(), 0);
    }

    #[test]
    fn madt_rejects_malformed_entries() {
        let zero_length = madt(&[local_apic(0, 0, 1), vec![0x7f, 0]]);
        assert_eq!(
            parse_madt(&zero_length).unwrap_err(),
            AcpiError::MalformedEntry { offset: 52 }
        );
        let past_end = madt(&[vec![0x7f, 10, 0, 0]]);
        assert_eq!(
            parse_madt(&past_end).unwrap_err(),
            AcpiError::MalformedEntry { offset: 44 }
        );
        let single_trailing_byte = madt(&[vec![0x7f]]);
        assert_eq!(
            parse_madt(&single_trailing_byte).unwrap_err(),
            AcpiError::MalformedEntry { offset: 44 }
        );
        let short_local_apic = madt(&[vec![0, 6, 0, 0, 1, 0]]);
        assert_eq!(
            parse_madt(&short_local_apic).unwrap_err(),
            AcpiError::MalformedEntry { offset: 44 }
        );
        let short_x2apic = madt(&[vec![9, 8, 0, 0, 1, 0, 0, 0]]);
        assert_eq!(
            parse_madt(&short_x2apic).unwrap_err(),
            AcpiError::MalformedEntry { offset: 44 }
        );
    }

    #[test]
    fn madt_rejects_bad_tables() {
        let good = madt(&[local_apic(0, 0, 1)]);
        assert_eq!(
            parse_madt(&good[..40]),
            Err(AcpiError::TooShort {
                table: *b"APIC",
                need: 52,
                have: 40
            })
        );
        let mut wrong = good.clone();
        wrong[0] = b'X';
        assert!(matches!(
            parse_madt(&wrong),
            Err(AcpiError::BadSignature { .. })
        ));
        let mut short = table(b"APIC", &[0; 4]);
        short.extend_from_slice(&[0; 8]);
        assert_eq!(
            parse_madt(&short),
            Err(AcpiError::BadLength {
                table: *b"APIC",
                length: 40
            })
        );
    }

    #[test]
    fn madt_ignores_bytes_past_length_field() {
        let mut table = madt(&[local_apic(0, 0, 1)]);
        table.extend_from_slice(&[0x7f, 0]); // would be malformed if parsed
        assert_eq!(parse_madt(&table).unwrap().cpus().len(), 1);
    }

    #[test]
    fn madt_limits_cpu_count() {
        let full: Vec<Vec<u8>> = (0..MAX_CPUS as u8)
            .map(|id| local_apic(id, id, 1))
            .collect();
        assert_eq!(parse_madt(&madt(&full)).unwrap().cpus().len(), MAX_CPUS);
        let mut over = full;
        over.push(x2apic(64, 64, 1));
        assert_eq!(
            parse_madt(&madt(&over)).unwrap_err(),
            AcpiError::TooManyCpus { capacity: MAX_CPUS }
        );
    }

    #[test]
    fn display_messages() {
        let errors = [
            AcpiError::TooShort {
                table: *b"AP\0C",
                need: 1,
                have: 0,
            },
            AcpiError::BadSignature {
                expected: *b"APIC",
                found: *b"HPET",
            },
            AcpiError::BadChecksum { table: *b"RSDP" },
            AcpiError::BadLength {
                table: *b"FACP",
                length: 3,
            },
            AcpiError::MalformedEntry { offset: 44 },
            AcpiError::TooManyCpus { capacity: 64 },
        ];
        for error in errors {
            assert!(!error.to_string().is_empty());
        }
        assert!(errors[0].to_string().contains("AP?C"));
    }

    fn arbitrary_madt_entry() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(|(u, a, f)| local_apic(u, a, f)),
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(u, a, f)| x2apic(u, a, f)),
            (any::<u8>(), any::<u32>()).prop_map(|(id, address)| io_apic(id, address)),
            any::<u64>().prop_map(lapic_override),
            prop::collection::vec(any::<u8>(), 0..12),
        ]
    }

    proptest! {
        #[test]
        fn parse_rsdp_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_rsdp(&bytes);
        }

        #[test]
        fn parse_rsdp_never_panics_with_valid_prefix(
            tail in prop::collection::vec(any::<u8>(), 0..40),
            revision in any::<u8>(),
        ) {
            let mut bytes = rsdp_v1(0x1000);
            bytes[15] = revision;
            fix_checksum(&mut bytes, 8, RSDP_V1_LEN);
            bytes.extend_from_slice(&tail);
            let _ = parse_rsdp(&bytes);
        }

        #[test]
        fn table_functions_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..128),
            entry_size in 0usize..10,
        ) {
            let _ = read_sdt_header(&bytes);
            let _ = validate_table(&bytes, *b"APIC");
            let _ = root_table_entries(&bytes, entry_size).count();
            let _ = parse_madt(&bytes);
        }

        #[test]
        fn parse_madt_never_panics_on_arbitrary_entries(
            entries in prop::collection::vec(arbitrary_madt_entry(), 0..80),
            truncate in any::<prop::sample::Index>(),
        ) {
            let table = madt(&entries);
            let _ = parse_madt(&table);
            let cut = truncate.index(table.len() + 1);
            let _ = parse_madt(&table[..cut]);
        }

        #[test]
        fn parse_madt_with_valid_header_never_panics(
            body in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let mut full_body = vec![0, 0, 0xe0, 0xfe, 1, 0, 0, 0];
            full_body.extend_from_slice(&body);
            let table = table(b"APIC", &full_body);
            if let Ok(info) = parse_madt(&table) {
                prop_assert!(info.cpus().len() <= MAX_CPUS);
                prop_assert!(info.usable_cpus().all(MadtCpu::is_usable));
            }
        }
    }
}
