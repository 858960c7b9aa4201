//! External programs the CLI needs, with one-line errors that say how to get them.

use anyhow::{bail, Result};
use std::path::PathBuf;

/// An external program and the Debian package that provides it.
pub struct Tool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const QEMU: Tool = Tool {
    program: "qemu-system-x86_64",
    package: "qemu-system-x86",
};
pub const GRUB_MKRESCUE: Tool = Tool {
    program: "grub-mkrescue",
    package: "grub-pc-bin grub-common",
};
pub const XORRISO: Tool = Tool {
    program: "xorriso",
    package: "xorriso",
};
pub const MFORMAT: Tool = Tool {
    program: "mformat",
    package: "mtools",
};

/// Full path of `tool` on PATH, or an error naming the package to install.
pub fn require(tool: &Tool) -> Result<PathBuf> {
    match find_on_path(tool.program) {
        Some(path) => Ok(path),
        None => bail!(
            "{} not found on PATH; install it with `sudo ci/install-deps` (Debian package: {})",
            tool.program,
            tool.package
        ),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
