//! Report rendering: deterministic bytes, the right content for bundles with
//! and without speedups, and no rendering of evidence that fails verification.

mod contract_support;

use capos_evidence::bundle::files::BundleFiles;
use capos_evidence::bundle::{keys, writer};
use capos_evidence::guest::qemu::Accel;
use capos_evidence::proof::report::{self, BundleFacts, Templates};
use contract_support::*;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The templates built into the binary are the checkout's `templates/`.
#[test]
fn builtin_templates_are_the_checkouts() {
    let from_dir = Templates::from_dir(&workspace_root().join("templates")).unwrap();
    let builtin = Templates::builtin();
    assert_eq!(builtin.markdown, from_dir.markdown);
    assert_eq!(builtin.html, from_dir.html);
}

fn facts(link_prefix: Option<&str>) -> BundleFacts {
    BundleFacts {
        name: "f".repeat(64),
        key_id: "test-key".into(),
        files: 42,
        link_prefix: link_prefix.map(str::to_string),
        tool: Default::default(),
        history: capos_evidence::proof::history::UNKNOWN_ARCHIVE.to_owned(),
        reproductions: None,
    }
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    let first = report::render(
        &Templates::builtin(),
        &BundleFiles::staging(&bundle),
        &facts(Some("../../bundle/")),
    )
    .unwrap();
    let second = report::render(
        &Templates::builtin(),
        &BundleFiles::staging(&bundle),
        &facts(Some("../../bundle/")),
    )
    .unwrap();
    assert_eq!(first, second);
}

#[test]
fn smp_boot_report_shows_claim_medians_chart_and_log_links() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    let rendered = report::render(
        &Templates::builtin(),
        &BundleFiles::staging(&bundle),
        &facts(Some("../../bundle/")),
    )
    .unwrap();
    let markdown = &rendered.markdown;
    assert!(
        markdown.starts_with("# Proof report: smp-boot\n"),
        "{markdown}"
    );
    assert!(
        markdown.contains("**Claim level: PUBLISHABLE**"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| cpus4 | 4 | 3/3 | online_ms (ms) | 347.468 |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("[serial.log](../../bundle/logs/cpus2/3/serial.log)"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| all-runs-pass | **pass** |"),
        "{markdown}"
    );
    assert!(!markdown.contains("## Speedups"), "{markdown}");
    assert_eq!(rendered.charts.len(), 1);
    assert_eq!(rendered.charts[0].0, "chart-online_ms.svg");
    assert!(rendered.charts[0].1.starts_with("<svg"));
    let html = &rendered.html;
    assert!(
        html.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "the chart is inlined unescaped"
    );
    assert!(html
        .contains("<a href=\"../../bundle/logs/cpus1/1/serial.timed.log\">serial.timed.log</a>"));
    assert!(html.contains("Median online_ms vs CPUs"));
}

#[test]
fn speedup_report_shows_the_gate_ideal_line_and_diagnostic_level() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    scale_bundle(
        &bundle,
        Accel::Tcg,
        &[2_000_000, 2_100_000, 1_900_000],
        &[1_050_000, 1_000_000, 1_200_000],
    );
    let rendered = report::render(
        &Templates::builtin(),
        &BundleFiles::staging(&bundle),
        &facts(None),
    )
    .unwrap();
    let markdown = &rendered.markdown;
    assert!(
        markdown.contains("**Claim level: DIAGNOSTIC**"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| one-to-two | elapsed_cycles |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| 1.905x | — | 2x | 95.2% | speedup-1-to-2 ≥ 1.6x: **pass** |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("`logs/cpus1/1/serial.log`"),
        "without a bundle dir, paths are not links"
    );
    let svg = &rendered.charts[0].1;
    assert!(svg.contains("stroke-dasharray"), "ideal line drawn");
    assert!(svg.contains("gate 1.60"), "threshold drawn");
}

#[test]
fn html_escapes_text_from_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    let text = SCALE_CONTRACT.replace(
        "claim: Two worker",
        "claim: <script>alert(1)</script> Two worker",
    );
    write_basics(&bundle, &text, &inputs("prime-scale", Accel::Kvm, 1, 2));
    for (case, cpus) in [("cpus1", 1), ("cpus2", 2)] {
        write_run(
            &bundle,
            case,
            1,
            &timed(0, &scale_lines(cpus, 1000)),
            &PASS_EXIT,
        );
    }
    finish_bundle(&bundle);
    let rendered = report::render(
        &Templates::builtin(),
        &BundleFiles::staging(&bundle),
        &facts(None),
    )
    .unwrap();
    assert!(!rendered.html.contains("<script>"));
    assert!(rendered.html.contains("&lt;script&gt;"));
}

/// Seal a synthetic bundle with a fresh key; returns (store, bundle path, public key path).
fn sealed_bundle(dir: &Path) -> (PathBuf, PathBuf) {
    let key_path = dir.join("keys/test.pem");
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    keys::write_key_pair(&key_path, &key, false).unwrap();
    let writer = writer::BundleWriter::create(&dir.join("store")).unwrap();
    smp_boot_bundle(writer.root(), Accel::Tcg);
    let sealed = writer
        .seal(
            &key,
            &run_facts("urn:uuid:00000000-0000-4000-8000-000000000000"),
        )
        .unwrap();
    (sealed, keys::public_key_path(&key_path))
}

#[test]
fn report_command_renders_verified_bundles_into_the_default_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (sealed, public_key) = sealed_bundle(dir.path());
    let name = sealed.file_name().unwrap().to_str().unwrap().to_string();
    let args = capos_evidence::cli::report::ReportArgs {
        bundle: sealed.clone(),
        trusted_key: public_key.clone(),
        out: None,
        templates: None,
        limits: Default::default(),
        reproductions: Default::default(),
    };
    capos_evidence::cli::report::run_command(args).unwrap();
    let out = dir.path().join("store/reports").join(&name);
    let first = std::fs::read(out.join("report.html")).unwrap();
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains(&format!("Bundle `{name}`")));
    assert!(
        markdown.contains(&format!("(../../{name}/logs/cpus1/1/serial.log)")),
        "{markdown}"
    );
    assert!(out.join("chart-online_ms.svg").is_file());

    let again = capos_evidence::cli::report::ReportArgs {
        bundle: sealed,
        trusted_key: public_key,
        out: None,
        templates: None,
        limits: Default::default(),
        reproductions: Default::default(),
    };
    capos_evidence::cli::report::run_command(again).unwrap();
    assert_eq!(first, std::fs::read(out.join("report.html")).unwrap());
}

#[test]
fn report_command_refuses_tampered_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let (sealed, public_key) = sealed_bundle(dir.path());
    let summary_path = sealed.join("summary.json");
    let text = std::fs::read_to_string(&summary_path).unwrap();
    std::fs::write(
        &summary_path,
        text.replace("\"publishable\"", "\"diagnostic\""),
    )
    .unwrap();
    let out = dir.path().join("out");
    let args = capos_evidence::cli::report::ReportArgs {
        bundle: sealed,
        trusted_key: public_key,
        out: Some(out.clone()),
        templates: None,
        limits: Default::default(),
        reproductions: Default::default(),
    };
    let message = format!(
        "{:#}",
        capos_evidence::cli::report::run_command(args).unwrap_err()
    );
    assert!(message.contains("refusing to report"), "{message}");
    assert!(message.contains("summary.json"), "{message}");
    assert!(!out.join("report.md").exists());
}

/// Issue 20, finding 6: strings of a (validly signed) bundle reached
/// report.md raw (HTML, `javascript:` links, ESC, bidi) and report.html
/// kept ESC and U+202E.
#[test]
fn hostile_strings_in_a_bundle_are_escaped_in_both_reports() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle");
    smp_boot_bundle(&bundle, Accel::Tcg);
    let hostile = "<script>alert(1)</script> [click](javascript:alert(2)) ![i](http://x/i.png) \u{1b}[2J\u{202e}txt.exe `code` | cell";
    let mut inputs = inputs("smp-boot", Accel::Tcg, 3, 2);
    inputs.host.cpu_model = hostile.into();
    inputs.qemu.version = format!("7.2\n# Heading\n{hostile}");
    inputs
        .environment
        .insert("CAPOS_X".into(), format!("a`b|{hostile}"));
    write_basics(&bundle, &smp_boot().text, &inputs);
    finish_bundle(&bundle);
    let rendered = report::render(
        &Templates::builtin(),
        &BundleFiles::staging(&bundle),
        &facts(Some("../../bundle/")),
    )
    .unwrap();
    for (name, text) in [
        ("report.md", &rendered.markdown),
        ("report.html", &rendered.html),
    ] {
        for raw in ['\u{1b}', '\u{202e}'] {
            assert!(!text.contains(raw), "{name} holds {raw:?} raw");
        }
    }
    assert!(
        !rendered.markdown.contains("\n# Heading"),
        "report.md: a heading from a value"
    );
    assert!(!rendered.html.contains("<script>"), "report.html: raw HTML");
    // Markdown: with backslash escapes taken out, no line outside a code
    // span holds markup (the CAPOS_X row is one code span, shown as text).
    for line in rendered.markdown.lines() {
        if line.starts_with("| `CAPOS_X` | ``") {
            continue;
        }
        let mut unescaped = String::new();
        let mut characters = line.chars();
        while let Some(character) = characters.next() {
            if character == '\\' {
                characters.next();
            } else {
                unescaped.push(character);
            }
        }
        for markup in ["<script>", "](javascript:", "![i]"] {
            assert!(!unescaped.contains(markup), "report.md: {markup} in {line}");
        }
    }
    let markdown = &rendered.markdown;
    assert!(
        markdown.contains("| Host CPU | \\<script>alert(1)\\</script> \\[click\\](javascript:alert(2)) \\!\\[i\\](http://x/i.png) \\\\u{1b}\\[2J\\\\u{202e}txt.exe \\`code\\` \\| cell, 2 logical CPUs |"),
        "{markdown}"
    );
    assert!(
        markdown.contains("| `CAPOS_X` | ``a`b\\|<script>"),
        "{markdown}"
    );
    assert!(
        rendered
            .html
            .contains("&lt;script&gt;alert(1)&lt;/script&gt; [click](javascript:alert(2))"),
        "{}",
        rendered.html
    );
    assert!(rendered.html.contains("\\u{1b}[2J\\u{202e}txt.exe"));
}
