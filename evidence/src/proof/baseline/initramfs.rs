//! The Linux guest's initramfs, written by `capos` itself: a newc cpio
//! archive holding `/dev`, the console device, the static `/init` and the
//! static `/empty`.
//!
//! Invariants: entries are fixed and in order (`dev`, `dev/console` as
//! character device 5:1, `init`, `empty`); owners are root, inode numbers count
//! from 1 and every mtime is the build's `SOURCE_DATE_EPOCH`, so the same
//! init gives the same archive bytes. `/dev/console` must exist or init
//! starts without a console. No compression (the kernel takes plain cpio).

use anyhow::{Context, Result};
use cpio::newc::{Builder, ModeFileType};
use std::io::Write;

/// Major and minor numbers of `/dev/console`.
pub const CONSOLE_DEVICE: (u32, u32) = (5, 1);

/// The archive for `init` and `empty` (the programs' bytes), stamped with `mtime`.
pub fn archive(init: &[u8], empty: &[u8], mtime: u32) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(init.len() + empty.len() + 1024);
    let entry = |name: &str, ino: u32| Builder::new(name).ino(ino).uid(0).gid(0).mtime(mtime);

    let directory = entry("dev", 1)
        .mode(0o755)
        .nlink(2)
        .set_mode_file_type(ModeFileType::Directory);
    out = directory.write(out, 0).finish()?;

    let console = entry("dev/console", 2)
        .mode(0o600)
        .rdev_major(CONSOLE_DEVICE.0)
        .rdev_minor(CONSOLE_DEVICE.1)
        .set_mode_file_type(ModeFileType::Char);
    out = console.write(out, 0).finish()?;

    for (ino, name, bytes) in [(3, "init", init), (4, "empty", empty)] {
        let size = u32::try_from(bytes.len()).context("a program is larger than 4 GiB")?;
        let program = entry(name, ino)
            .mode(0o755)
            .set_mode_file_type(ModeFileType::Regular);
        let mut writer = program.write(out, size);
        writer.write_all(bytes)?;
        out = writer.finish()?;
    }
    Ok(cpio::newc::trailer(out)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// (name, mode, rdev major, rdev minor, contents) of every entry.
    fn entries(mut archive: &[u8]) -> Vec<(String, u32, u32, u32, Vec<u8>)> {
        let mut found = Vec::new();
        loop {
            let mut reader = cpio::newc::Reader::new(archive).unwrap();
            if reader.entry().is_trailer() {
                return found;
            }
            let entry = reader.entry();
            let (name, mode) = (entry.name().to_string(), entry.mode());
            let (major, minor) = (entry.rdev_major(), entry.rdev_minor());
            let mut contents = Vec::new();
            reader.read_to_end(&mut contents).unwrap();
            found.push((name, mode, major, minor, contents));
            archive = reader.finish().unwrap();
        }
    }

    #[test]
    fn holds_the_console_device_and_init() {
        let bytes = archive(b"\x7fELF fake init", b"empty", 1_700_000_000).unwrap();
        let found = entries(&bytes);
        assert_eq!(found.len(), 4);
        assert_eq!((found[0].0.as_str(), found[0].1), ("dev", 0o040755));
        assert_eq!(
            (found[1].0.as_str(), found[1].1, found[1].2, found[1].3),
            ("dev/console", 0o020600, 5, 1)
        );
        assert_eq!((found[2].0.as_str(), found[2].1), ("init", 0o100755));
        assert_eq!(found[2].4, b"\x7fELF fake init");
        assert_eq!(
            (found[3].0.as_str(), found[3].4.as_slice()),
            ("empty", b"empty".as_slice())
        );
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn the_same_init_gives_the_same_bytes() {
        assert_eq!(
            archive(b"abc", b"e", 7).unwrap(),
            archive(b"abc", b"e", 7).unwrap()
        );
        assert_ne!(
            archive(b"abc", b"e", 7).unwrap(),
            archive(b"abd", b"e", 7).unwrap()
        );
    }
}
