//! Escaping for the report templates: every value a template prints comes
//! from a bundle, and a validly signed bundle may still be hostile, so the
//! report's own formatter escapes every printed value for the template's
//! language (Markdown or HTML), unless a filter here already rendered it.
//!
//! Invariants:
//! - Markdown: characters that open inline constructs (emphasis, code,
//!   links, images, raw HTML, entities, table pipes, strikethrough) are
//!   backslash-escaped, so no value can add a link, an image or HTML
//!   (`>` and `#` only act at a line start, which no inline value reaches);
//!   line breaks inside a value become spaces ([`markdown_paragraph`] keeps
//!   them and neutralises block markers at line starts).
//! - HTML: `& < > " '` become entities.
//! - Both: control characters (ESC, ...) and characters that reorder or
//!   hide text (bidi overrides, zero-width characters) are shown as visible
//!   `\u{..}` text, never passed through.
//! - Link targets are percent-encoded ([`url_path`]): a value cannot name a
//!   scheme (`javascript:`) or leave the path.

use std::fmt::Write as _;

use minijinja::value::Value;
use minijinja::{AutoEscape, Error, Output, State};

/// Name of the custom auto-escape mode of Markdown templates.
pub const MARKDOWN: &str = "markdown";

/// The auto-escape mode for a template: HTML for `.html`/`.html.j2`,
/// Markdown for everything else (the report templates are one or the other).
#[must_use]
pub fn auto_escape_for(name: &str) -> AutoEscape {
    let name = name.strip_suffix(".j2").unwrap_or(name);
    if name.ends_with(".html") || name.ends_with(".htm") {
        AutoEscape::Html
    } else {
        AutoEscape::Custom(MARKDOWN)
    }
}

/// The templates' formatter: safe strings (filter output, charts) as they
/// are, anything else escaped for the template's language.
pub fn formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    if value.is_safe() {
        return write!(out, "{value}").map_err(Error::from);
    }
    let text = if value.is_none() || value.is_undefined() {
        String::new()
    } else {
        value.to_string()
    };
    let escaped = match state.auto_escape() {
        AutoEscape::Html => html_text(&text),
        _ => markdown_text(&text),
    };
    out.write_str(&escaped).map_err(Error::from)
}

/// Whether `character` must be shown as an escape rather than itself.
fn hidden(character: char) -> bool {
    character != '\\' && crate::terminal::needs_escape(character)
}

/// `\u{..}` for `character`.
fn visible(shown: &mut String, character: char, backslash: &str) {
    // Writing to a String cannot fail.
    let _ = write!(shown, "{backslash}u{{{:x}}}", u32::from(character));
}

/// `text` for Markdown inline text (a table cell, a sentence): inline
/// markup escaped, line breaks and tabs as spaces, controls visible.
#[must_use]
pub fn markdown_text(text: &str) -> String {
    let characters: Vec<char> = text.chars().collect();
    let mut shown = String::with_capacity(text.len() + 8);
    for (index, &character) in characters.iter().enumerate() {
        let alphanumeric = |at: Option<&char>| at.is_some_and(|c| c.is_alphanumeric());
        match character {
            '\n' | '\r' | '\t' => shown.push(' '),
            // An underscore inside a word cannot open or close emphasis
            // (CommonMark's flanking rules), so `rq_lock` stays readable.
            '_' if index > 0
                && alphanumeric(characters.get(index - 1))
                && alphanumeric(characters.get(index + 1)) =>
            {
                shown.push('_');
            }
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '&' | '|' | '~' | '!' => {
                shown.push('\\');
                shown.push(character);
            }
            // A backslash escape renders as one backslash.
            other if hidden(other) => visible(&mut shown, other, "\\\\"),
            other => shown.push(other),
        }
    }
    shown
}

/// `text` as Markdown paragraphs: like [`markdown_text`], but line breaks
/// kept and each line's start unable to begin a list, heading, quote,
/// setext underline or code block.
#[must_use]
pub fn markdown_paragraph(text: &str) -> String {
    text.lines()
        .map(|line| {
            let line = markdown_text(line.trim_start());
            let digits = line.chars().take_while(char::is_ascii_digit).count();
            match line[digits..].chars().next() {
                Some('-' | '+' | '=' | '#' | '>') if digits == 0 => format!("\\{line}"),
                Some('.' | ')') if digits > 0 => {
                    format!("{}\\{}", &line[..digits], &line[digits..])
                }
                _ => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` as a whole Markdown code span (delimiters included), safe in a
/// table cell: a delimiter longer than any backtick run inside, pipes
/// escaped (GFM tables split on them even in code), line breaks as spaces,
/// controls visible.
#[must_use]
pub fn markdown_code(text: &str) -> String {
    let mut body = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            '\n' | '\r' | '\t' => body.push(' '),
            '|' => body.push_str("\\|"),
            other if hidden(other) => visible(&mut body, other, "\\"),
            other => body.push(other),
        }
    }
    let longest_run = body
        .split(|character| character != '`')
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if body.starts_with('`') || body.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{body}{pad}{fence}")
}

/// `text` as HTML text or attribute value: `& < > " '` as entities,
/// controls visible.
#[must_use]
pub fn html_text(text: &str) -> String {
    let mut shown = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            '&' => shown.push_str("&amp;"),
            '<' => shown.push_str("&lt;"),
            '>' => shown.push_str("&gt;"),
            '"' => shown.push_str("&quot;"),
            '\'' => shown.push_str("&#39;"),
            '\n' => shown.push('\n'),
            other if hidden(other) => visible(&mut shown, other, "\\"),
            other => shown.push(other),
        }
    }
    shown
}

/// A relative path as a link target: every byte but letters, digits and
/// `-._~/` percent-encoded, so it cannot carry a scheme (`javascript:`),
/// a query, a fragment or markup. The result needs no further escaping in
/// Markdown or HTML.
#[must_use]
pub fn url_path(text: &str) -> String {
    let mut shown = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            shown.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(shown, "%{byte:02X}");
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_text_cannot_open_links_html_or_code() {
        assert_eq!(
            markdown_text("[x](javascript:alert(1)) <img src=x> `a` *b* a|b"),
            "\\[x\\](javascript:alert(1)) \\<img src=x> \\`a\\` \\*b\\* a\\|b"
        );
        assert_eq!(markdown_text("a\nb\\c"), "a b\\\\c");
        assert_eq!(markdown_text("rq_lock _x_ y_"), "rq_lock \\_x\\_ y\\_");
    }

    #[test]
    fn controls_and_bidi_are_visible_everywhere() {
        let hostile = "a\u{1b}[31mb\u{202e}c\u{200b}";
        assert_eq!(
            markdown_text(hostile),
            "a\\\\u{1b}\\[31mb\\\\u{202e}c\\\\u{200b}"
        );
        assert_eq!(html_text(hostile), "a\\u{1b}[31mb\\u{202e}c\\u{200b}");
        assert_eq!(markdown_code(hostile), "`a\\u{1b}[31mb\\u{202e}c\\u{200b}`");
        for shown in [
            markdown_text(hostile),
            html_text(hostile),
            markdown_code(hostile),
        ] {
            assert!(!shown.contains(['\u{1b}', '\u{202e}', '\u{200b}']));
        }
    }

    #[test]
    fn html_text_escapes_markup() {
        assert_eq!(
            html_text("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn code_spans_outgrow_their_content() {
        assert_eq!(markdown_code("a`b``c"), "```a`b``c```");
        assert_eq!(markdown_code("`x"), "`` `x ``");
        assert_eq!(markdown_code("a|b\nc"), "`a\\|b c`");
    }

    #[test]
    fn paragraphs_keep_lines_but_not_block_markers() {
        assert_eq!(
            markdown_paragraph("Boot.\n- item\n1. one\n  # head\n=="),
            "Boot.\n\\- item\n1\\. one\n\\# head\n\\=="
        );
    }

    #[test]
    fn url_paths_cannot_carry_a_scheme() {
        assert_eq!(url_path("javascript:alert(1)"), "javascript%3Aalert%281%29");
        assert_eq!(
            url_path("logs/cpus1/1/serial.log"),
            "logs/cpus1/1/serial.log"
        );
        assert_eq!(url_path("a b\"<"), "a%20b%22%3C");
    }

    #[test]
    fn templates_pick_their_language_by_name() {
        assert_eq!(auto_escape_for("report.html.j2"), AutoEscape::Html);
        assert_eq!(
            auto_escape_for("report.md.j2"),
            AutoEscape::Custom(MARKDOWN)
        );
    }
}
