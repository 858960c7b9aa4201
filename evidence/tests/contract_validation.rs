//! Contract loading: the shipped contracts are valid, and every kind of
//! mistake is rejected with a message that names the file and the item.

mod contract_support;

use capos_evidence::proof::contract::{self, ContractError};
use contract_support::{scale_contract, smp_boot, SCALE_CONTRACT};
use std::path::Path;

/// Parse `text` and return the error message (panics if it parsed).
fn error_of(text: &str) -> String {
    match contract::parse(text, Path::new("evidence/contracts/broken.yaml")) {
        Ok(_) => panic!("contract unexpectedly valid:\n{text}"),
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.contains("evidence/contracts/broken.yaml"),
                "no file named: {message}"
            );
            message
        }
    }
}

#[test]
fn shipped_smp_boot_contract_is_valid() {
    let contract = smp_boot();
    let ids: Vec<_> = contract
        .spec
        .cases
        .iter()
        .map(|case| case.id.as_str())
        .collect();
    assert_eq!(ids, ["cpus1", "cpus2", "cpus4"]);
    assert_eq!(contract.spec.repetitions.default, 5);
    assert_eq!(contract.spec.repetitions.env, "CAPOS_SMP_BOOT_RUNS");
    assert!(contract.spec.speedups.is_empty());
    assert_eq!(contract.gates().len(), 2);
    assert_eq!(contract.spec.metrics[0].name, "online_ms");
}

#[test]
fn every_shipped_contract_loads() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let names = contract::available(root);
    assert!(names.contains(&"smp-boot".to_string()), "{names:?}");
    for name in names {
        contract::find(root, &name).unwrap_or_else(|error| panic!("{error}"));
    }
}

#[test]
fn speedup_example_contract_is_valid() {
    let contract = scale_contract();
    assert_eq!(contract.speedups().len(), 1);
    assert_eq!(contract.gates().len(), 2);
}

#[test]
fn unknown_field_is_rejected_with_its_name() {
    let text = SCALE_CONTRACT.replace("claim:", "colour: blue\nclaim:");
    let message = error_of(&text);
    assert!(message.contains("unknown field `colour`"), "{message}");
    let nested = SCALE_CONTRACT.replace("timeout_secs: 120}", "timeout_secs: 120, smp: 2}");
    assert!(error_of(&nested).contains("unknown field `smp`"));
}

#[test]
fn speedup_without_gate_is_rejected() {
    let text = SCALE_CONTRACT.replace(
        "  - {id: speedup-1-to-2, description: 1-to-2 median speedup of at least 1.6x, kind: speedup_at_least, speedup: one-to-two, threshold: 1.6}\n",
        "",
    );
    assert_ne!(text, SCALE_CONTRACT);
    let message = error_of(&text);
    assert!(message.contains("missing gate"), "{message}");
    assert!(message.contains("one-to-two"), "{message}");
}

#[test]
fn speedups_require_the_kvm_policy() {
    let text = SCALE_CONTRACT.replace("publishable_requires: kvm", "publishable_requires: any");
    assert!(error_of(&text).contains("publishable_requires must be kvm"));
}

#[test]
fn invalid_regex_is_rejected() {
    let text = SCALE_CONTRACT.replace(r"(?P<primes>\d+)", r"(?P<primes>\d+");
    let message = error_of(&text);
    assert!(
        message.contains("result_line.pattern is not a valid regex"),
        "{message}"
    );
    let metric = SCALE_CONTRACT.replace(
        r"arrival_ms: '\[prime-scale\] .*'",
        "arrival_ms: '[unclosed'",
    );
    assert!(error_of(&metric).contains("source.arrival_ms is not a valid regex"));
}

#[test]
fn regex_missing_a_declared_group_is_rejected() {
    let text = SCALE_CONTRACT.replace(r"(?P<checksum>[0-9a-f]+)", r"[0-9a-f]+");
    let message = error_of(&text);
    assert!(
        message.contains("no named group (?P<checksum>"),
        "{message}"
    );
}

#[test]
fn undeclared_group_is_rejected() {
    let text = SCALE_CONTRACT.replace(
        r"checksum=(?P<checksum>",
        r"(?P<extra>checksum)=(?P<checksum>",
    );
    assert!(error_of(&text).contains("group \"extra\" is not a declared field"));
}

#[test]
fn dangling_references_are_rejected() {
    let metric = SCALE_CONTRACT.replace("source: {field: elapsed}", "source: {field: elapsed_ns}");
    assert!(error_of(&metric).contains("unknown result_line field \"elapsed_ns\""));
    let case = SCALE_CONTRACT.replace("baseline_case: cpus1", "baseline_case: cpus8");
    assert!(error_of(&case).contains("unknown baseline_case \"cpus8\""));
    let speedup = SCALE_CONTRACT.replace("speedup: one-to-two,", "speedup: one-to-four,");
    assert!(error_of(&speedup).contains("unknown speedup \"one-to-four\""));
    let gate_field = smp_boot()
        .text
        .replace("field: online\n", "field: offline\n");
    assert!(error_of(&gate_field).contains("unknown result_line field \"offline\""));
}

#[test]
fn duplicate_case_ids_are_rejected() {
    let text = SCALE_CONTRACT.replace("{id: cpus2, cpus: 2", "{id: cpus1, cpus: 2");
    assert!(error_of(&text).contains("duplicate case id \"cpus1\""));
}

#[test]
fn bad_expectations_are_rejected() {
    let attribute =
        SCALE_CONTRACT.replace("must_equal: case.workers}", "must_equal: case.threads}");
    assert!(error_of(&attribute).contains("unknown case attribute case.threads"));
    let kind = SCALE_CONTRACT.replace("must_equal: true}", "must_equal: 1}");
    assert!(error_of(&kind).contains("verified"));
    let workers = smp_boot()
        .text
        .replace("must_equal: case.cpus - 1", "must_equal: case.workers");
    assert!(error_of(&workers).contains("has no workers"));
}

#[test]
fn gate_parameters_are_checked() {
    let missing = SCALE_CONTRACT.replace(", threshold: 1.6}", "}");
    assert!(error_of(&missing).contains("needs `threshold`"));
    let extra =
        SCALE_CONTRACT.replace("kind: all_runs_pass}", "kind: all_runs_pass, threshold: 2}");
    assert!(error_of(&extra).contains("does not take threshold"));
}

#[test]
fn all_problems_are_listed_at_once() {
    let text = SCALE_CONTRACT
        .replace("{id: cpus2, cpus: 2", "{id: cpus1, cpus: 2")
        .replace(r"(?P<checksum>[0-9a-f]+)", r"[0-9a-f]+");
    match contract::parse(&text, Path::new("x.yaml")) {
        Err(ContractError::Invalid { problems, .. }) => {
            assert!(problems.len() >= 2, "{problems:?}")
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn syntax_errors_carry_a_location() {
    let message = error_of("name: [unclosed\n");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn unknown_proof_lists_the_available_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let message = contract::find(root, "no-such-proof")
        .unwrap_err()
        .to_string();
    assert!(message.contains("no-such-proof"), "{message}");
    assert!(message.contains("smp-boot"), "{message}");
    assert!(contract::find(root, "../contracts/smp-boot").is_err());
}

#[test]
fn name_must_match_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other-name.yaml");
    std::fs::write(&path, SCALE_CONTRACT).unwrap();
    let message = contract::load(&path).unwrap_err().to_string();
    assert!(
        message.contains("does not match the file name"),
        "{message}"
    );
}

#[test]
fn repetitions_come_from_flag_then_environment_then_default() {
    let text = SCALE_CONTRACT.replace("CAPOS_PRIME_SCALE_RUNS", "CAPOS_TEST_ONLY_REPETITIONS");
    let contract = contract::parse(&text, Path::new("prime-scale.yaml")).unwrap();
    let choice = contract.choose_repetitions(Some("7")).unwrap();
    assert_eq!((choice.count, choice.source.as_str()), (7, "--runs"));
    std::env::remove_var("CAPOS_TEST_ONLY_REPETITIONS");
    let choice = contract.choose_repetitions(None).unwrap();
    assert_eq!(
        (choice.count, choice.source.as_str()),
        (3, "contract default")
    );
    std::env::set_var("CAPOS_TEST_ONLY_REPETITIONS", "9");
    let choice = contract.choose_repetitions(None).unwrap();
    assert_eq!(
        (choice.count, choice.source.as_str()),
        (9, "env CAPOS_TEST_ONLY_REPETITIONS")
    );
    for bad in ["0", "101", "five", "-1", ""] {
        std::env::set_var("CAPOS_TEST_ONLY_REPETITIONS", bad);
        let message = contract.choose_repetitions(None).unwrap_err().to_string();
        assert!(message.contains("CAPOS_TEST_ONLY_REPETITIONS"), "{message}");
        assert!(message.contains("1 to 100"), "{message}");
    }
    std::env::remove_var("CAPOS_TEST_ONLY_REPETITIONS");
    assert!(contract.choose_repetitions(Some("0")).is_err());
    // `auto`: the default stopping rule, its cap as the count until the
    // rounds are done; `auto:<cap>` lowers or raises the cap.
    let choice = contract.choose_repetitions(Some("auto")).unwrap();
    let rule = choice.adaptive.clone().unwrap();
    assert_eq!(
        (choice.count, rule.min_rounds, rule.max_rounds),
        (15, 3, 15)
    );
    let choice = contract.choose_repetitions(Some("auto:6")).unwrap();
    assert_eq!((choice.count, choice.adaptive.unwrap().max_rounds), (6, 6));
    // `auto:<cap>:<width>%` sets the target width too; `auto::<width>%`
    // keeps the default cap.
    let rule = contract
        .choose_repetitions(Some("auto:8:20%"))
        .unwrap()
        .adaptive
        .unwrap();
    assert_eq!((rule.max_rounds, rule.target_relative_width), (8, 0.2));
    let rule = contract
        .choose_repetitions(Some("auto::12.5%"))
        .unwrap()
        .adaptive
        .unwrap();
    assert_eq!((rule.max_rounds, rule.target_relative_width), (15, 0.125));
    for bad in [
        "auto:2",
        "auto:101",
        "auto:",
        "automatic",
        "auto:x",
        "auto::",
        "auto::20",
        "auto::0%",
        "auto::101%",
        "auto::-5%",
        "auto::NaN%",
        "auto:6:20%:1",
    ] {
        let message = contract
            .choose_repetitions(Some(bad))
            .unwrap_err()
            .to_string();
        assert!(message.contains("auto:<cap>"), "{bad}: {message}");
    }
}

#[test]
fn a_threshold_variable_replaces_the_threshold_only_when_recorded() {
    let text = SCALE_CONTRACT.replace(
        "threshold: 1.6}",
        "threshold: 1.6, threshold_env: CAPOS_PRIME_SCALE_REQUIRE}",
    );
    let contract = contract::parse(&text, Path::new("prime-scale.yaml")).unwrap();
    let gate = &contract.spec.gates[1];
    let mut environment = std::collections::BTreeMap::new();
    assert_eq!(gate.threshold_in(1.6, &environment), 1.6);
    environment.insert("CAPOS_PRIME_SCALE_REQUIRE".to_string(), "1.25".to_string());
    assert_eq!(gate.threshold_in(1.6, &environment), 1.25);
    // An edited record that is not a positive number can never pass.
    for bad in ["fast", "-1", "0", "NaN", "inf"] {
        environment.insert("CAPOS_PRIME_SCALE_REQUIRE".to_string(), bad.to_string());
        assert_eq!(gate.threshold_in(1.6, &environment), f64::INFINITY, "{bad}");
    }
    assert_eq!(contract::parse_threshold(" 1.9 "), Some(1.9));
}

#[test]
fn threshold_variables_are_capos_names_on_threshold_gates_only() {
    let lower =
        SCALE_CONTRACT.replace("threshold: 1.6}", "threshold: 1.6, threshold_env: require}");
    assert!(error_of(&lower).contains("must be a CAPOS_* variable name"));
    let on_all_runs = SCALE_CONTRACT.replace(
        "kind: all_runs_pass}",
        "kind: all_runs_pass, threshold_env: CAPOS_X}",
    );
    assert!(error_of(&on_all_runs).contains("does not take threshold_env"));
}

#[test]
fn phases_are_distinct_metrics_of_one_unit() {
    let mixed = format!("{SCALE_CONTRACT}phases: [elapsed_cycles, result_ms]\n");
    assert!(error_of(&mixed).contains("must share one unit"));
    let unknown = format!("{SCALE_CONTRACT}phases: [elapsed_cycles, idle_cycles]\n");
    assert!(error_of(&unknown).contains("no metric named \"idle_cycles\""));
    let twice = format!("{SCALE_CONTRACT}phases: [elapsed_cycles, elapsed_cycles]\n");
    assert!(error_of(&twice).contains("listed twice"));
    let alone = format!("{SCALE_CONTRACT}phases: [elapsed_cycles]\n");
    assert!(error_of(&alone).contains("at least two"));
    let thread_scale = contract::find(
        Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap(),
        "thread-scale",
    )
    .unwrap();
    assert_eq!(
        thread_scale.spec.phases,
        ["spawn_ready_cycles", "work_cycles", "shutdown_cycles"]
    );
}
