//! Build script of the `capos` CLI: stamps the binary with the commit it was
//! built from, so every bundle can name the exact tool that made it.
//!
//! `CAPOS_TOOL_COMMIT` (set by the Nix build, which has no `.git`) wins;
//! otherwise `git rev-parse HEAD`, with `-dirty` when the tool's own sources
//! differ from that commit; `unknown` when neither is available.

use std::path::Path;

#[path = "src/git.rs"]
mod git;

/// What the tool is built from, relative to the workspace root.
const TOOL_SOURCES: [&str; 5] = [
    "evidence",
    "templates",
    "userland/abi",
    "Cargo.lock",
    "Cargo.toml",
];

fn main() {
    println!("cargo:rerun-if-env-changed=CAPOS_TOOL_COMMIT");
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let root = Path::new(&manifest_dir).join("..");
    for source in TOOL_SOURCES {
        println!("cargo:rerun-if-changed={}", root.join(source).display());
    }
    let commit = match std::env::var("CAPOS_TOOL_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => commit.trim().to_owned(),
        _ => git_commit(&root).unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=CAPOS_TOOL_COMMIT={commit}");
}

/// HEAD, plus `-dirty` when a tool source differs from it; None without git.
fn git_commit(root: &Path) -> Option<String> {
    let git = |args: &[&str]| git::output(root, args);
    let head = git(&["rev-parse", "HEAD"])?;
    // Rebuild when HEAD moves or the index changes (a commit, a checkout).
    // Only files that exist: cargo treats a missing one as always changed,
    // which rebuilt the tool on every `cargo run` in a repository without
    // `packed-refs`. (Packing refs deletes the loose ref file, so a ref that
    // moves into `packed-refs` still triggers a rebuild.)
    let watch = |path: String| {
        let path = root.join(path);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    };
    for name in ["HEAD", "index", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            watch(path);
        }
    }
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        if let Some(path) = git(&["rev-parse", "--git-path", &reference]) {
            watch(path);
        }
    }
    let mut status = vec!["status", "--porcelain", "--untracked-files=normal", "--"];
    status.extend(TOOL_SOURCES);
    let dirty = git(&status).is_none_or(|text| !text.is_empty());
    Some(if dirty { format!("{head}-dirty") } else { head })
}
