//! `MANIFEST.sha256`: the canonical list of a bundle's files with their sizes and
//! digests, and the rules a bundle tree must follow.
//!
//! Invariants:
//! - A bundle holds regular files and the directories above them, nothing
//!   else: no symlinks, no special files, no empty directories, and every
//!   path is UTF-8 without a newline.
//! - `MANIFEST.sha256` lists every file except itself, one
//!   `<sha256>  <size>  <path>\n` line each, sorted by path bytes; there is
//!   exactly one text for a given set of files.
//! - The bundle name is the lowercase hex sha256 of the manifest's bytes.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::MANIFEST_FILE;

/// Why a directory is not a well-formed bundle, or a manifest not canonical.
#[derive(thiserror::Error, Debug)]
pub enum BundleError {
    /// Reading or writing failed.
    #[error("{}: {cause}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error (shown in the message, so not chained as a source).
        cause: io::Error,
    },
    /// A symlink sits inside the bundle.
    #[error("{path}: symlinks are not allowed in a bundle")]
    Symlink {
        /// Relative path of the symlink.
        path: String,
    },
    /// A device, socket or fifo sits inside the bundle.
    #[error("{path}: only regular files and directories are allowed in a bundle")]
    SpecialFile {
        /// Relative path of the special file.
        path: String,
    },
    /// A directory holds nothing (the manifest could not record it).
    #[error("{path}: empty directory; a bundle holds files only")]
    EmptyDirectory {
        /// Relative path of the directory.
        path: String,
    },
    /// A path is not valid UTF-8.
    #[error("{}: path is not valid UTF-8", path.display())]
    NonUtf8Path {
        /// The relative path, lossily shown.
        path: PathBuf,
    },
    /// A path contains a newline, which the manifest cannot hold.
    #[error("{path:?}: path contains a newline")]
    NewlineInPath {
        /// The relative path.
        path: String,
    },
    /// The manifest is not in canonical form.
    #[error("{MANIFEST_FILE} line {line}: {problem}")]
    Manifest {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: ManifestProblem,
    },
}

/// What makes one manifest line non-canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestProblem {
    /// The line is not UTF-8.
    NotUtf8,
    /// The last line does not end with `\n`.
    MissingFinalNewline,
    /// The line is not `<sha256>  <size>  <path>`.
    Malformed,
    /// The digest is not 64 lowercase hex digits.
    BadDigest,
    /// The size is not a decimal number without leading zeros.
    BadSize,
    /// The path is not a clean relative path.
    BadPath(&'static str),
    /// The path does not sort after the previous line's path.
    NotSorted {
        /// The previous line's path.
        previous: String,
    },
    /// The path repeats the previous line's path.
    Duplicate,
    /// The manifest lists itself.
    ListsItself,
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotUtf8 => write!(formatter, "not valid UTF-8"),
            Self::MissingFinalNewline => write!(formatter, "missing the final newline"),
            Self::Malformed => write!(formatter, "expected `<sha256>  <size>  <path>`"),
            Self::BadDigest => write!(formatter, "digest is not 64 lowercase hex digits"),
            Self::BadSize => write!(
                formatter,
                "size is not a decimal number without leading zeros"
            ),
            Self::BadPath(reason) => write!(formatter, "path {reason}"),
            Self::NotSorted { previous } => write!(
                formatter,
                "path sorts before the previous line's {previous:?} (lines must be sorted by path bytes)"
            ),
            Self::Duplicate => write!(formatter, "path repeats the previous line"),
            Self::ListsItself => write!(formatter, "the manifest lists itself"),
        }
    }
}

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestEntry {
    /// Relative path with `/` separators.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Lowercase hex sha256 of the contents.
    pub sha256: String,
}

/// The files and directories of a bundle, as relative `/`-separated paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    /// Regular files, sorted by path bytes.
    pub files: Vec<String>,
    /// Directories below the root (not the root itself), sorted by path bytes.
    pub directories: Vec<String>,
}

/// Why a relative path is not clean, or `None` when it is: non-empty, not
/// absolute, no empty, `.` or `..` segment, no NUL or newline.
#[must_use]
pub fn relative_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.starts_with('/') {
        return Some("is absolute");
    }
    if path.contains('\n') || path.contains('\0') {
        return Some("contains a newline or NUL");
    }
    for segment in path.split('/') {
        match segment {
            "" => return Some("has an empty segment"),
            "." | ".." => return Some("has a `.` or `..` segment"),
            _ => {}
        }
    }
    None
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BundleError + '_ {
    move |cause| BundleError::Io {
        path: path.to_path_buf(),
        cause,
    }
}

/// List every file and directory under `dir`, refusing anything a bundle may not hold.
///
/// Entries are visited in sorted order, so the first problem reported is the
/// same on every machine.
pub fn walk(dir: &Path) -> Result<Tree, BundleError> {
    let mut tree = Tree::default();
    walk_into(dir, "", &mut tree)?;
    tree.files.sort();
    tree.directories.sort();
    Ok(tree)
}

fn walk_into(dir: &Path, prefix: &str, tree: &mut Tree) -> Result<usize, BundleError> {
    let mut entries = fs::read_dir(dir)
        .map_err(io_error(dir))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_error(dir))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in &entries {
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            return Err(BundleError::NonUtf8Path {
                path: Path::new(prefix).join(&file_name),
            });
        };
        let relative = format!("{prefix}{name}");
        if relative.contains('\n') {
            return Err(BundleError::NewlineInPath { path: relative });
        }
        let path = entry.path();
        let metadata = fs::symlink_metadata(&path).map_err(io_error(&path))?;
        let kind = metadata.file_type();
        if kind.is_symlink() {
            return Err(BundleError::Symlink { path: relative });
        } else if kind.is_dir() {
            if walk_into(&path, &format!("{relative}/"), tree)? == 0 {
                return Err(BundleError::EmptyDirectory { path: relative });
            }
            tree.directories.push(relative);
        } else if kind.is_file() {
            tree.files.push(relative);
        } else {
            return Err(BundleError::SpecialFile { path: relative });
        }
    }
    Ok(entries.len())
}

/// Lowercase hex sha256 and size of one file, read once as a stream.
pub fn digest_file(path: &Path) -> Result<(String, u64), BundleError> {
    crate::digest::file_sha256(path).map_err(io_error(path))
}

/// The bundle name for a manifest: lowercase hex sha256 of its bytes.
#[must_use]
pub fn bundle_name(manifest_text: &[u8]) -> String {
    crate::digest::sha256_hex(manifest_text)
}

/// Render manifest entries canonically (sorted by path bytes, one line each).
#[must_use]
pub fn render_manifest(entries: &[ManifestEntry]) -> String {
    let mut sorted: Vec<&ManifestEntry> = entries.iter().collect();
    sorted.sort_by(|left, right| left.path.cmp(&right.path));
    sorted
        .iter()
        .map(|entry| format!("{}  {}  {}\n", entry.sha256, entry.size, entry.path))
        .collect()
}

/// Parse a manifest, accepting only its canonical form.
pub fn parse_manifest(bytes: &[u8]) -> Result<Vec<ManifestEntry>, BundleError> {
    let mut entries: Vec<ManifestEntry> = Vec::new();
    if bytes.is_empty() {
        return Ok(entries);
    }
    let lines: Vec<&[u8]> = bytes.split(|byte| *byte == b'\n').collect();
    // A final newline leaves one empty piece after it.
    let Some((last, complete)) = lines.split_last() else {
        return Ok(entries);
    };
    if !last.is_empty() {
        return Err(BundleError::Manifest {
            line: lines.len(),
            problem: ManifestProblem::MissingFinalNewline,
        });
    }
    for (index, raw) in complete.iter().enumerate() {
        let line = index + 1;
        let problem = |problem| BundleError::Manifest { line, problem };
        let text = std::str::from_utf8(raw).map_err(|_| problem(ManifestProblem::NotUtf8))?;
        let entry = parse_manifest_line(text).map_err(problem)?;
        if let Some(previous) = entries.last() {
            if entry.path == previous.path {
                return Err(problem(ManifestProblem::Duplicate));
            }
            if entry.path < previous.path {
                return Err(problem(ManifestProblem::NotSorted {
                    previous: previous.path.clone(),
                }));
            }
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn parse_manifest_line(text: &str) -> Result<ManifestEntry, ManifestProblem> {
    let (digest, rest) = text.split_once("  ").ok_or(ManifestProblem::Malformed)?;
    let (size, path) = rest.split_once("  ").ok_or(ManifestProblem::Malformed)?;
    let is_lower_hex = |byte: u8| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
    if digest.len() != 64 || !digest.bytes().all(is_lower_hex) {
        return Err(ManifestProblem::BadDigest);
    }
    let canonical_size = !size.is_empty()
        && size.bytes().all(|byte| byte.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    let size = size
        .parse::<u64>()
        .ok()
        .filter(|_| canonical_size)
        .ok_or(ManifestProblem::BadSize)?;
    if let Some(reason) = relative_path_problem(path) {
        return Err(ManifestProblem::BadPath(reason));
    }
    if path == MANIFEST_FILE {
        return Err(ManifestProblem::ListsItself);
    }
    Ok(ManifestEntry {
        path: path.to_owned(),
        size,
        sha256: digest.to_owned(),
    })
}

/// Digest every file of `dir` except a top-level `MANIFEST.sha256`.
pub fn manifest_entries(dir: &Path) -> Result<Vec<ManifestEntry>, BundleError> {
    let tree = walk(dir)?;
    tree.files
        .iter()
        .filter(|path| path.as_str() != MANIFEST_FILE)
        .map(|path| {
            let (sha256, size) = digest_file(&dir.join(path))?;
            Ok(ManifestEntry {
                path: path.clone(),
                size,
                sha256,
            })
        })
        .collect()
}

/// The canonical manifest text for a directory (every file except `MANIFEST.sha256`).
pub fn write_manifest_text(dir: &Path) -> Result<String, BundleError> {
    Ok(render_manifest(&manifest_entries(dir)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const HELLO_SHA256: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

    fn problem_of(text: &str) -> (usize, ManifestProblem) {
        match parse_manifest(text.as_bytes()) {
            Err(BundleError::Manifest { line, problem }) => (line, problem),
            other => panic!("expected a manifest error, got {other:?}"),
        }
    }

    #[test]
    fn manifest_text_is_canonical() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("logs/a")).unwrap();
        fs::write(dir.path().join("logs/a/x"), "hello\n").unwrap();
        fs::write(dir.path().join("logs-b"), "").unwrap();
        fs::write(dir.path().join(MANIFEST_FILE), "ignored").unwrap();
        let text = write_manifest_text(dir.path()).unwrap();
        // '-' (0x2d) sorts before '/' (0x2f): byte order, not component order.
        assert_eq!(
            text,
            format!("{EMPTY_SHA256}  0  logs-b\n{HELLO_SHA256}  6  logs/a/x\n")
        );
        assert_eq!(
            parse_manifest(text.as_bytes()).unwrap(),
            vec![
                ManifestEntry {
                    path: "logs-b".into(),
                    size: 0,
                    sha256: EMPTY_SHA256.into()
                },
                ManifestEntry {
                    path: "logs/a/x".into(),
                    size: 6,
                    sha256: HELLO_SHA256.into()
                },
            ]
        );
    }

    #[test]
    fn parse_rejects_non_canonical_lines() {
        let line = |digest: &str, size: &str, path: &str| format!("{digest}  {size}  {path}\n");
        let good = line(EMPTY_SHA256, "0", "a");
        assert_eq!(
            problem_of(good.trim_end()),
            (1, ManifestProblem::MissingFinalNewline)
        );
        assert_eq!(
            problem_of(&line(&EMPTY_SHA256.to_uppercase(), "0", "a")),
            (1, ManifestProblem::BadDigest)
        );
        assert_eq!(
            problem_of(&line(&EMPTY_SHA256[1..], "0", "a")),
            (1, ManifestProblem::BadDigest)
        );
        assert_eq!(
            problem_of(&line(EMPTY_SHA256, "00", "a")),
            (1, ManifestProblem::BadSize)
        );
        assert_eq!(
            problem_of(&line(EMPTY_SHA256, "+1", "a")),
            (1, ManifestProblem::BadSize)
        );
        assert_eq!(
            problem_of(&format!("{EMPTY_SHA256} 0 a\n")),
            (1, ManifestProblem::Malformed)
        );
        assert_eq!(
            problem_of(&format!("{good}{}", line(EMPTY_SHA256, "0", "../x"))),
            (2, ManifestProblem::BadPath("has a `.` or `..` segment"))
        );
        assert_eq!(
            problem_of(&line(EMPTY_SHA256, "0", "/etc/passwd")),
            (1, ManifestProblem::BadPath("is absolute"))
        );
        assert_eq!(
            problem_of(&line(EMPTY_SHA256, "0", "a//b")),
            (1, ManifestProblem::BadPath("has an empty segment"))
        );
        assert_eq!(
            problem_of(&format!("{good}{good}")),
            (2, ManifestProblem::Duplicate)
        );
        assert_eq!(
            problem_of(&format!("{}{good}", line(EMPTY_SHA256, "0", "b"))),
            (
                2,
                ManifestProblem::NotSorted {
                    previous: "b".into()
                }
            )
        );
        assert_eq!(
            problem_of(&line(EMPTY_SHA256, "0", MANIFEST_FILE)),
            (1, ManifestProblem::ListsItself)
        );
        assert_eq!(
            problem_of(&format!("{good}\r\n")),
            (2, ManifestProblem::Malformed)
        );
        let mut not_utf8 = good.clone().into_bytes();
        not_utf8.extend_from_slice(b"\xff\n");
        assert!(matches!(
            parse_manifest(&not_utf8),
            Err(BundleError::Manifest {
                line: 2,
                problem: ManifestProblem::NotUtf8
            })
        ));
    }

    #[test]
    fn paths_with_spaces_round_trip() {
        let text = format!("{EMPTY_SHA256}  0  a  b c\n");
        let entries = parse_manifest(text.as_bytes()).unwrap();
        assert_eq!(entries[0].path, "a  b c");
        assert_eq!(render_manifest(&entries), text);
    }

    #[test]
    fn walk_refuses_symlinks_special_files_and_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a"), "").unwrap();
        std::os::unix::fs::symlink("a", dir.path().join("b")).unwrap();
        assert!(matches!(walk(dir.path()), Err(BundleError::Symlink { path }) if path == "b"));
        fs::remove_file(dir.path().join("b")).unwrap();
        fs::create_dir_all(dir.path().join("logs/empty")).unwrap();
        assert!(matches!(
            walk(dir.path()),
            Err(BundleError::EmptyDirectory { path }) if path == "logs/empty"
        ));
        fs::remove_dir(dir.path().join("logs/empty")).unwrap();
        let fifo = dir.path().join("logs/fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        assert!(matches!(
            walk(dir.path()),
            Err(BundleError::SpecialFile { path }) if path == "logs/fifo"
        ));
    }

    #[test]
    fn walk_refuses_newlines_in_names() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a\nb"), "").unwrap();
        assert!(matches!(
            walk(dir.path()),
            Err(BundleError::NewlineInPath { path }) if path == "a\nb"
        ));
    }

    fn path_strategy() -> impl Strategy<Value = String> {
        proptest::collection::vec("[a-zA-Z0-9 ._-]{1,8}", 1..4).prop_filter_map(
            "clean path",
            |segments| {
                let path = segments.join("/");
                (relative_path_problem(&path).is_none() && path != MANIFEST_FILE).then_some(path)
            },
        )
    }

    proptest! {
        #[test]
        fn render_then_parse_is_identity(
            files in proptest::collection::btree_map(path_strategy(), (any::<u64>(), any::<[u8; 32]>()), 0..8)
        ) {
            let entries: Vec<ManifestEntry> = files
                .into_iter()
                .map(|(path, (size, digest))| ManifestEntry { path, size, sha256: hex::encode(digest) })
                .collect();
            let text = render_manifest(&entries);
            prop_assert_eq!(parse_manifest(text.as_bytes()).unwrap(), entries);
        }

        #[test]
        fn parse_never_panics_and_accepts_only_what_it_renders(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(entries) = parse_manifest(&bytes) {
                prop_assert_eq!(render_manifest(&entries).into_bytes(), bytes);
            }
        }
    }
}
