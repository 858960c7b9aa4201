//! Showing untrusted text on a terminal.
//!
//! Invariant: every string that comes from a bundle, an archive or a run log
//! (file names, manifest paths, key ids, contract text, ...) passes through
//! [`untrusted`] before it reaches stdout or stderr, so a forged bundle
//! cannot move the cursor, recolour or erase lines, or reorder text, and so
//! cannot paint a fake `verified:` line: [`untrusted`] is the one function
//! that renders such a string, and it escapes line breaks too. Escapes are unambiguous: a
//! backslash is doubled, so `\u{1b}` in the output always means the
//! escaped byte, never the same text in the input.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every character that could act on a terminal or hide
/// itself shown as a `\u{..}` escape, and `\` doubled. Plain text comes
/// back borrowed.
#[must_use]
pub fn untrusted(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut shown = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if character == '\\' {
            shown.push_str("\\\\");
        } else if needs_escape(character) {
            // Writing to a String cannot fail.
            let _ = write!(shown, "\\u{{{:x}}}", u32::from(character));
        } else {
            shown.push(character);
        }
    }
    Cow::Owned(shown)
}

/// Several untrusted strings, each escaped, joined by `, `.
#[must_use]
pub fn untrusted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|item| untrusted(item))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A whole error message as `capos` prints it, after its untrusted parts
/// went through [`untrusted`] (which escapes line breaks too): control and
/// hiding characters escaped except the message's own line breaks, and every
/// line after the first indented by two spaces, so that no line of an error
/// can start where a success line (`verified: ...`) would. Backslashes are
/// left alone (the parts escaped them already). Not for untrusted strings.
#[must_use]
pub fn error_message(text: &str) -> String {
    let mut shown = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        if character == '\n' {
            shown.push_str("\n  ");
        } else if character != '\\' && needs_escape(character) {
            // Writing to a String cannot fail.
            let _ = write!(shown, "\\u{{{:x}}}", u32::from(character));
        } else {
            shown.push(character);
        }
    }
    shown
}

/// Control characters (C0 including tab and newline, DEL, C1), Unicode
/// format characters that reorder or hide text (bidi overrides and
/// isolates, zero-width characters, byte-order mark), separators that end
/// lines, and the backslash used for the escapes themselves.
#[must_use]
pub fn needs_escape(character: char) -> bool {
    character == '\\'
        || character.is_control()
        || matches!(
            character,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let text = "logs/cpus1/1/serial.log  ✓ ünïcode";
        assert!(matches!(untrusted(text), Cow::Borrowed(same) if same == text));
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(
            untrusted("a\u{1b}[2K\rverified: x\n"),
            "a\\u{1b}[2K\\u{d}verified: x\\u{a}"
        );
        assert_eq!(untrusted("\u{7f}\u{9b}31m\t"), "\\u{7f}\\u{9b}31m\\u{9}");
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        assert_eq!(
            untrusted("evil\u{202e}gol.txt\u{200b}\u{2066}\u{feff}"),
            "evil\\u{202e}gol.txt\\u{200b}\\u{2066}\\u{feff}"
        );
    }

    #[test]
    fn escapes_are_unambiguous() {
        // The literal text of an escape is not confused with the escaped byte.
        assert_eq!(untrusted("\\u{1b}"), "\\\\u{1b}");
        assert_ne!(untrusted("\\u{1b}"), untrusted("\u{1b}"));
    }

    #[test]
    fn whole_messages_keep_their_line_breaks_indented_and_backslashes() {
        assert_eq!(
            error_message("a: b\n  stored: \\u{1b}\u{1b}[31m"),
            "a: b\n    stored: \\u{1b}\\u{1b}[31m"
        );
        // Even a line break that escaped escaping cannot start a line at column 0.
        assert_eq!(
            error_message("x\nverified: forged"),
            "x\n  verified: forged"
        );
    }

    #[test]
    fn lists_escape_every_item() {
        assert_eq!(
            untrusted_list(&["ab".into(), "c\u{1b}".into()]),
            "ab, c\\u{1b}"
        );
    }
}
