//! The boot archive: every user program and packed manifest in one newc cpio
//! boot module, which the kernel reads by name (`capos_kcore::boot_archive`).
//!
//! Invariants: entries are sorted by path (`manifests/<name>`, then
//! `programs/<name>`), every one a regular file with mode 0644, owner 0,
//! inode numbers counting from 1 and the build's `SOURCE_DATE_EPOCH` as
//! mtime, so the same inputs give the same bytes. Every archive this module
//! returns has been read back by the kernel's own parser and found to hold
//! exactly the entries it was given; a name the kernel would refuse, or a
//! name used twice, is an error here rather than a failed boot.

use anyhow::{bail, ensure, Context, Result};
use capos_kcore::boot_archive::{is_valid_name, BootArchive, EntryKind, NAME_MAX};
use std::io::Write;

/// Regular file, read/write for the owner, read for everyone else.
const FILE_MODE: u32 = 0o100_644;

/// One program or manifest to pack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveFile {
    pub kind: EntryKind,
    pub name: String,
    pub bytes: Vec<u8>,
}

impl ArchiveFile {
    /// Its path inside the archive.
    pub fn path(&self) -> String {
        format!("{}{}", self.kind.directory(), self.name)
    }
}

/// Write `files` as a boot archive stamped with `mtime` (seconds since the
/// epoch), then check it with the kernel's parser.
pub fn write(files: &[ArchiveFile], mtime: u64) -> Result<Vec<u8>> {
    let mtime = u32::try_from(mtime)
        .with_context(|| format!("SOURCE_DATE_EPOCH {mtime} does not fit a cpio header"))?;
    let mut sorted: Vec<(String, &ArchiveFile)> =
        files.iter().map(|file| (file.path(), file)).collect();
    sorted.sort_by(|left, right| left.0.cmp(&right.0));
    for pair in sorted.windows(2) {
        if pair[0].0 == pair[1].0 {
            bail!("the boot archive would hold {} twice", pair[0].0);
        }
    }
    let mut out = Vec::new();
    for (index, (path, file)) in sorted.iter().enumerate() {
        ensure!(
            is_valid_name(&file.name),
            "{path}: a boot archive name is 1 to {NAME_MAX} ASCII letters, digits, '-', '_' or '.', not starting with '.'"
        );
        let size = u32::try_from(file.bytes.len())
            .with_context(|| format!("{path} is larger than 4 GiB"))?;
        let inode = u32::try_from(index + 1).context("too many boot archive entries")?;
        let mut writer = cpio::newc::Builder::new(path)
            .ino(inode)
            .mode(FILE_MODE)
            .uid(0)
            .gid(0)
            .nlink(1)
            .mtime(mtime)
            .write(out, size);
        writer
            .write_all(&file.bytes)
            .with_context(|| format!("writing {path} into the boot archive"))?;
        out = writer.finish()?;
    }
    let out = cpio::newc::trailer(out)?;
    check(&out, files)?;
    Ok(out)
}

/// Fail unless the kernel's parser accepts `archive` and finds exactly
/// `files` in it, byte for byte.
pub fn check(archive: &[u8], files: &[ArchiveFile]) -> Result<()> {
    let parsed = BootArchive::parse(archive).map_err(|error| {
        anyhow::anyhow!("internal error: the kernel would refuse the boot archive: {error}")
    })?;
    ensure!(
        parsed.len() == files.len(),
        "internal error: the boot archive holds {} entries, not {}",
        parsed.len(),
        files.len()
    );
    for file in files {
        match parsed.find(file.kind, &file.name) {
            Some(bytes) if bytes == file.bytes.as_slice() => {}
            Some(_) => bail!(
                "internal error: {} differs inside the boot archive",
                file.path()
            ),
            None => bail!(
                "internal error: {} is missing from the boot archive",
                file.path()
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(kind: EntryKind, name: &str, bytes: &[u8]) -> ArchiveFile {
        ArchiveFile {
            kind,
            name: name.to_string(),
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn same_files_in_any_order_give_the_same_bytes() {
        let files = vec![
            file(EntryKind::Program, "init", b"\x7fELF init"),
            file(EntryKind::Manifest, "system-hello", b"packed"),
            file(EntryKind::Program, "hello", b"\x7fELF hello"),
        ];
        let mut reversed = files.clone();
        reversed.reverse();
        let archive = write(&files, 1_700_000_000).unwrap();
        assert_eq!(archive, write(&reversed, 1_700_000_000).unwrap());
        assert_ne!(archive, write(&files, 1_700_000_001).unwrap());
        let parsed = BootArchive::parse(&archive).unwrap();
        let paths: Vec<String> = parsed
            .entries()
            .map(|entry| format!("{}{}", entry.kind.directory(), entry.name))
            .collect();
        assert_eq!(
            paths,
            ["manifests/system-hello", "programs/hello", "programs/init"]
        );
    }

    #[test]
    fn refuses_what_the_kernel_would_refuse() {
        let twice = [
            file(EntryKind::Program, "hello", b"1"),
            file(EntryKind::Program, "hello", b"2"),
        ];
        let error = write(&twice, 0).unwrap_err().to_string();
        assert!(error.contains("programs/hello twice"), "{error}");
        let bad_name = [file(EntryKind::Manifest, "a/b", b"")];
        let error = write(&bad_name, 0).unwrap_err().to_string();
        assert!(error.contains("manifests/a/b"), "{error}");
        assert!(write(&[], u64::from(u32::MAX) + 1).is_err());
    }

    #[test]
    fn check_notices_a_missing_or_changed_entry() {
        let files = [file(EntryKind::Program, "hello", b"abc")];
        let archive = write(&files, 0).unwrap();
        let other = [file(EntryKind::Program, "hello", b"abd")];
        assert!(check(&archive, &other).is_err());
        let more = [files[0].clone(), file(EntryKind::Program, "init", b"")];
        assert!(check(&archive, &more).is_err());
    }
}
