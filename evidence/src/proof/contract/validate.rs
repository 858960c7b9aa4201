//! Contract validation: every rule checked, every problem collected (not just
//! the first), and the references resolved to indexes and compiled patterns.
//!
//! Invariant: [`validate`] returns resolved parts only when no problem was
//! found, so a `Contract` never holds a dangling name or an unchecked regex.

use regex::Regex;
use std::collections::BTreeSet;

use super::baseline::Ratio;
use super::schema::*;
use super::{Gate, MetricSource, Speedup, MAX_REPETITIONS};

/// Check every rule of `spec`: its resolved parts, or every problem found.
pub(super) fn validate(spec: &ContractSpec) -> Result<Resolved, Vec<String>> {
    let mut validator = Validator {
        spec,
        problems: Vec::new(),
    };
    match validator.validate() {
        Some(resolved) if validator.problems.is_empty() => Ok(resolved),
        _ => Err(validator.problems),
    }
}

/// What validation computes besides the list of problems.
pub(super) struct Resolved {
    pub(super) result_pattern: Regex,
    pub(super) field_expectations: Vec<Option<Expectation>>,
    pub(super) line_count_patterns: Vec<(Regex, Expectation)>,
    pub(super) metric_sources: Vec<MetricSource>,
    pub(super) speedups: Vec<Speedup>,
    pub(super) ratios: Vec<Ratio>,
    pub(super) gates: Vec<Gate>,
}

/// Collects every problem of a contract instead of stopping at the first.
struct Validator<'a> {
    spec: &'a ContractSpec,
    problems: Vec<String>,
}

impl Validator<'_> {
    fn problem(&mut self, message: String) {
        self.problems.push(message);
    }

    /// Check everything; None if some part could not be resolved at all.
    fn validate(&mut self) -> Option<Resolved> {
        self.check_header();
        self.check_cases();
        let result_pattern = self.check_result_line();
        let field_expectations = self.resolve_field_expectations();
        let line_count_patterns = self.resolve_line_counts();
        let metric_sources = self.resolve_metrics();
        self.check_phases();
        self.check_workload_size();
        let speedups = self.resolve_speedups();
        let (problems, ratios) = super::baseline::check_contract(self.spec);
        self.problems.extend(problems);
        let gates = self.resolve_gates(&speedups, &ratios);
        Some(Resolved {
            result_pattern: result_pattern?,
            field_expectations,
            line_count_patterns,
            metric_sources,
            speedups: speedups.into_iter().collect::<Option<Vec<_>>>()?,
            ratios: ratios.into_iter().collect::<Option<Vec<_>>>()?,
            gates,
        })
    }

    /// `workload_size` names a CAPOS_* variable, an integer and a hex field,
    /// and a workload whose checksum the host can compute (thread-scale).
    fn check_workload_size(&mut self) {
        let Some(size) = &self.spec.workload_size else {
            return;
        };
        let well_formed = size.env.starts_with("CAPOS_")
            && size
                .env
                .bytes()
                .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_');
        if !well_formed {
            self.problem(format!(
                "workload_size.env {:?} must be a CAPOS_* variable name (A-Z, 0-9, _)",
                size.env
            ));
        }
        if size.option != "blocks" {
            self.problem(format!(
                "workload_size.option {:?}: only `blocks` (thread-scale's size) is supported",
                size.option
            ));
        }
        let program = self
            .spec
            .baseline
            .as_ref()
            .map(|baseline| baseline.program.as_str());
        let process = self.spec.result_line.process.as_deref();
        if program != Some("thread-scale") && process != Some("thread-scale") {
            self.problem(
                "workload_size: the host computes checksums for the thread-scale workload only"
                    .into(),
            );
        }
        for (key, name, kind) in [
            ("field", &size.field, FieldKind::Integer),
            ("checksum_field", &size.checksum_field, FieldKind::Hex),
        ] {
            let found = self
                .spec
                .result_line
                .fields
                .iter()
                .find(|field| &field.name == name);
            if found.map(|field| field.kind) != Some(kind) {
                self.problem(format!(
                    "workload_size.{key} {name:?} must be a result_line field of kind {kind:?}"
                ));
            }
        }
    }

    /// `phases` name distinct metrics of one unit (at least two).
    fn check_phases(&mut self) {
        let spec = self.spec;
        if spec.phases.is_empty() {
            return;
        }
        if spec.phases.len() < 2 {
            self.problem("phases: name at least two metrics (or leave phases out)".into());
        }
        let mut units = BTreeSet::new();
        for (index, name) in spec.phases.iter().enumerate() {
            match spec.metrics.iter().find(|metric| &metric.name == name) {
                Some(metric) => {
                    units.insert(metric.unit.as_str());
                }
                None => self.problem(format!("phases[{index}]: no metric named {name:?}")),
            }
            if spec.phases[..index].contains(name) {
                self.problem(format!("phases[{index}]: {name:?} is listed twice"));
            }
        }
        if units.len() > 1 {
            self.problem(format!(
                "phases: the metrics must share one unit to be stacked (found {})",
                units.into_iter().collect::<Vec<_>>().join(", ")
            ));
        }
    }

    fn check_header(&mut self) {
        let spec = self.spec;
        if !is_identifier(&spec.name) {
            self.problem(format!(
                "name {:?} must be non-empty and use only letters, digits, '-' and '_'",
                spec.name
            ));
        }
        if spec.claim.trim().is_empty() {
            self.problem("claim is empty: say what the evidence supports".into());
        }
        if !(1..=MAX_REPETITIONS).contains(&spec.repetitions.default) {
            self.problem(format!(
                "repetitions.default is {}, must be 1..={MAX_REPETITIONS}",
                spec.repetitions.default
            ));
        }
        let env = &spec.repetitions.env;
        if !env.starts_with("CAPOS_")
            || !env
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        {
            self.problem(format!(
                "repetitions.env {env:?} must be an upper-case variable named CAPOS_..."
            ));
        }
        if spec.gates.is_empty() {
            self.problem("gates is empty: a contract without a gate decides nothing".into());
        }
    }

    fn check_cases(&mut self) {
        let spec = self.spec;
        if spec.cases.is_empty() {
            self.problem("cases is empty".into());
        }
        let mut seen = BTreeSet::new();
        for case in &spec.cases {
            if !is_identifier(&case.id) {
                self.problem(format!(
                    "case id {:?} must use only letters, digits, '-' and '_' (it names a log directory)",
                    case.id
                ));
            }
            if !seen.insert(case.id.as_str()) {
                self.problem(format!("duplicate case id {:?}", case.id));
            }
            if !(1..=64).contains(&case.cpus) {
                self.problem(format!(
                    "case {:?}: cpus {} must be 1..=64",
                    case.id, case.cpus
                ));
            }
            if case.workers == Some(0) {
                self.problem(format!("case {:?}: workers must be at least 1", case.id));
            }
            if !(1..=86_400).contains(&case.timeout_secs) {
                self.problem(format!(
                    "case {:?}: timeout_secs {} must be 1..=86400",
                    case.id, case.timeout_secs
                ));
            }
            if !(32..=65_536).contains(&case.memory()) {
                self.problem(format!(
                    "case {:?}: memory_mib {} must be 32..=65536",
                    case.id,
                    case.memory()
                ));
            }
            if case.cmdline.contains(',') {
                self.problem(format!(
                    "case {:?}: cmdline may not contain ',' (QEMU -fw_cfg syntax)",
                    case.id
                ));
            }
        }
    }

    /// Compile the result pattern and check its groups against the fields.
    fn check_result_line(&mut self) -> Option<Regex> {
        let line = &self.spec.result_line;
        if line.prefix.is_empty() {
            self.problem(
                "result_line.prefix is empty: it decides which lines are result lines".into(),
            );
        }
        let mut names = BTreeSet::new();
        for field in &line.fields {
            if !is_identifier(&field.name) {
                self.problem(format!(
                    "result_line field name {:?} must use only letters, digits, '-' and '_'",
                    field.name
                ));
            }
            if !names.insert(field.name.as_str()) {
                self.problem(format!("duplicate result_line field {:?}", field.name));
            }
            if field.at_least.is_some()
                && !matches!(field.kind, FieldKind::Integer | FieldKind::Hex)
            {
                self.problem(format!(
                    "result_line field {:?}: at_least needs an integer or hex field",
                    field.name
                ));
            }
        }
        if line.fields.is_empty() {
            self.problem("result_line.fields is empty".into());
        }
        let pattern = self.compile("result_line.pattern", &line.pattern)?;
        let groups: BTreeSet<&str> = pattern.capture_names().flatten().collect();
        for field in &line.fields {
            if !groups.contains(field.name.as_str()) {
                self.problem(format!(
                    "result_line.pattern has no named group (?P<{}>...) for declared field {:?}",
                    field.name, field.name
                ));
            }
        }
        for group in &groups {
            if !names.contains(group) {
                self.problem(format!(
                    "result_line.pattern group {group:?} is not a declared field (declare it or make it unnamed)"
                ));
            }
        }
        Some(pattern)
    }

    /// Compile `pattern` anchored to the whole line, recording an error.
    fn compile(&mut self, what: &str, pattern: &str) -> Option<Regex> {
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(regex) => Some(regex),
            Err(error) => {
                let detail = match Regex::new(pattern) {
                    Err(original) => original.to_string(),
                    Ok(_) => error.to_string(),
                };
                self.problem(format!("{what} is not a valid regex: {detail}"));
                None
            }
        }
    }

    fn resolve_field_expectations(&mut self) -> Vec<Option<Expectation>> {
        let spec = self.spec;
        spec.result_line
            .fields
            .iter()
            .map(|field| {
                let literal = field.must_equal.as_ref()?;
                let what = format!("result_line field {:?} must_equal", field.name);
                self.resolve_expectation(&what, literal, field.kind)
            })
            .collect()
    }

    fn resolve_line_counts(&mut self) -> Vec<(Regex, Expectation)> {
        let spec = self.spec;
        let mut resolved = Vec::new();
        for (index, count) in spec.line_counts.iter().enumerate() {
            let what = format!("line_counts[{index}]");
            let pattern = self.compile(&format!("{what}.pattern"), &count.pattern);
            let expectation = self.resolve_expectation(
                &format!("{what}.equals"),
                &count.equals,
                FieldKind::Integer,
            );
            if let (Some(pattern), Some(expectation)) = (pattern, expectation) {
                resolved.push((pattern, expectation));
            }
        }
        resolved
    }

    /// Turn a written literal into an expectation for a field of `kind`.
    fn resolve_expectation(
        &mut self,
        what: &str,
        literal: &Literal,
        kind: FieldKind,
    ) -> Option<Expectation> {
        if let Literal::Text(text) = literal {
            if let Some(reference) = text.trim().strip_prefix("case.") {
                return self.resolve_case_reference(what, reference, kind);
            }
        }
        let value = match (kind, literal) {
            (FieldKind::Integer, Literal::Integer(value)) => Some(FieldValue::Integer(*value)),
            (FieldKind::Hex, Literal::Integer(value)) => {
                u64::try_from(*value).ok().map(FieldValue::Hex)
            }
            (FieldKind::Hex, Literal::Text(text)) => FieldKind::Hex.parse(text),
            (FieldKind::Text, Literal::Text(text)) => Some(FieldValue::Text(text.clone())),
            (FieldKind::Bool, Literal::Bool(value)) => Some(FieldValue::Bool(*value)),
            _ => None,
        };
        if value.is_none() {
            self.problem(format!(
                "{what}: {literal:?} is not a {kind:?} value or a case.cpus/case.workers reference"
            ));
        }
        value.map(Expectation::Value)
    }

    /// `cpus`, `workers`, optionally followed by `+ n` or `- n`.
    fn resolve_case_reference(
        &mut self,
        what: &str,
        reference: &str,
        kind: FieldKind,
    ) -> Option<Expectation> {
        if !matches!(kind, FieldKind::Integer | FieldKind::Hex) {
            self.problem(format!(
                "{what}: a case reference needs an integer or hex field"
            ));
            return None;
        }
        let (name, rest) = match reference.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        {
            Some(end) => (&reference[..end], reference[end..].trim()),
            None => (reference, ""),
        };
        let attribute = match name {
            "cpus" => CaseAttribute::Cpus,
            "workers" => CaseAttribute::Workers,
            _ => {
                self.problem(format!(
                    "{what}: unknown case attribute case.{name} (known: case.cpus, case.workers)"
                ));
                return None;
            }
        };
        let offset = if rest.is_empty() {
            Some(0)
        } else {
            let (sign, number) = rest.split_at(1);
            let number: Option<i64> = number.trim().parse().ok();
            match (sign, number) {
                ("+", Some(number)) => Some(number),
                ("-", Some(number)) => number.checked_neg(),
                _ => None,
            }
        };
        let Some(offset) = offset else {
            self.problem(format!(
                "{what}: cannot read case.{reference:?}; write case.cpus, case.cpus - 1 or case.cpus + 1"
            ));
            return None;
        };
        if attribute == CaseAttribute::Workers {
            let spec = self.spec;
            for case in spec.cases.iter().filter(|case| case.workers.is_none()) {
                self.problem(format!(
                    "{what} refers to case.workers but case {:?} has no workers",
                    case.id
                ));
            }
        }
        Some(Expectation::Case { attribute, offset })
    }

    fn field_index(&self, name: &str) -> Option<usize> {
        self.spec
            .result_line
            .fields
            .iter()
            .position(|field| field.name == name)
    }

    fn resolve_metrics(&mut self) -> Vec<MetricSource> {
        let spec = self.spec;
        let mut names = BTreeSet::new();
        let mut sources = Vec::new();
        if spec.metrics.is_empty() {
            self.problem("metrics is empty: a proof records at least one figure".into());
        }
        for metric in &spec.metrics {
            let what = format!("metric {:?}", metric.name);
            if !is_identifier(&metric.name) {
                self.problem(format!(
                    "{what}: name must use only letters, digits, '-' and '_'"
                ));
            }
            if !names.insert(metric.name.as_str()) {
                self.problem(format!("duplicate metric {:?}", metric.name));
            }
            if spec
                .result_line
                .fields
                .iter()
                .any(|field| field.name == metric.name)
            {
                self.problem(format!(
                    "{what} has the same name as a result_line field (they share results.csv columns)"
                ));
            }
            match (&metric.source.field, &metric.source.arrival_ms) {
                (Some(field), None) => match self.field_index(field) {
                    Some(index) => {
                        let kind = spec.result_line.fields[index].kind;
                        if matches!(kind, FieldKind::Integer | FieldKind::Hex) {
                            sources.push(MetricSource::Field(index));
                        } else {
                            self.problem(format!(
                                "{what}: field {field:?} is {kind:?}, not a number"
                            ));
                        }
                    }
                    None => self.problem(format!(
                        "{what} refers to unknown result_line field {field:?}"
                    )),
                },
                (None, Some(pattern)) => {
                    if let Some(regex) = self.compile(&format!("{what} source.arrival_ms"), pattern)
                    {
                        sources.push(MetricSource::ArrivalMs(regex));
                    }
                }
                _ => self.problem(format!(
                    "{what}: source must set exactly one of `field` and `arrival_ms`"
                )),
            }
        }
        sources
    }

    fn resolve_speedups(&mut self) -> Vec<Option<Speedup>> {
        let spec = self.spec;
        let mut ids = BTreeSet::new();
        let mut resolved = Vec::new();
        for speedup in &spec.speedups {
            let what = format!("speedup {:?}", speedup.id);
            if !ids.insert(speedup.id.as_str()) {
                self.problem(format!("duplicate speedup id {:?}", speedup.id));
            }
            let metric = spec.metrics.iter().position(|m| m.name == speedup.metric);
            if metric.is_none() {
                self.problem(format!(
                    "{what} refers to unknown metric {:?}",
                    speedup.metric
                ));
            }
            let case_index = |id: &str| spec.cases.iter().position(|case| case.id == id);
            let baseline = case_index(&speedup.baseline_case);
            if baseline.is_none() {
                self.problem(format!(
                    "{what} refers to unknown baseline_case {:?}",
                    speedup.baseline_case
                ));
            }
            let case = case_index(&speedup.case);
            if case.is_none() {
                self.problem(format!("{what} refers to unknown case {:?}", speedup.case));
            }
            if baseline.is_some() && baseline == case {
                self.problem(format!(
                    "{what} compares case {:?} with itself",
                    speedup.case
                ));
            }
            resolved.push(match (metric, baseline, case) {
                (Some(metric), Some(baseline_case), Some(case)) => Some(Speedup {
                    metric,
                    baseline_case,
                    case,
                }),
                _ => None,
            });
        }
        if !spec.speedups.is_empty()
            && spec.accelerator.publishable_requires != RequiredAccelerator::Kvm
        {
            self.problem(
                "the contract has speedups, so accelerator.publishable_requires must be kvm (a scaling claim is publishable only under KVM)"
                    .into(),
            );
        }
        resolved
    }

    fn resolve_gates(
        &mut self,
        speedups: &[Option<Speedup>],
        ratios: &[Option<Ratio>],
    ) -> Vec<Gate> {
        let spec = self.spec;
        let mut ids = BTreeSet::new();
        let mut gated_speedups = BTreeSet::new();
        let mut gated_ratios = BTreeSet::new();
        let mut gates = Vec::new();
        for gate in &spec.gates {
            let what = format!("gate {:?}", gate.id);
            if !ids.insert(gate.id.as_str()) {
                self.problem(format!("duplicate gate id {:?}", gate.id));
            }
            let mut unexpected = Vec::new();
            let parameters: [(&str, bool); 7] = [
                ("speedup", gate.speedup.is_some()),
                ("threshold", gate.threshold.is_some()),
                ("field", gate.field.is_some()),
                ("value", gate.value.is_some()),
                ("ratio", gate.ratio.is_some()),
                ("threshold_env", gate.threshold_env.is_some()),
                ("opt_in_env", gate.opt_in_env.is_some()),
            ];
            let allowed: &[&str] = match gate.kind {
                GateKind::AllRunsPass => &[],
                GateKind::FieldEquals => &["field", "value"],
                GateKind::SpeedupAtLeast => &["speedup", "threshold"],
                GateKind::RatioAtLeast => &["ratio", "threshold"],
            };
            for (key, name) in [
                ("threshold_env", &gate.threshold_env),
                ("opt_in_env", &gate.opt_in_env),
            ] {
                let Some(name) = name else {
                    continue;
                };
                let well_formed = name.starts_with("CAPOS_")
                    && name.bytes().all(|byte| {
                        byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_'
                    });
                if !well_formed {
                    self.problem(format!(
                        "{what}: {key} {name:?} must be a CAPOS_* variable name (A-Z, 0-9, _)"
                    ));
                }
            }
            let optional: &[&str] = match gate.kind {
                GateKind::SpeedupAtLeast | GateKind::RatioAtLeast => {
                    &["threshold_env", "opt_in_env"]
                }
                _ => &[],
            };
            for (name, present) in parameters {
                if optional.contains(&name) {
                    continue;
                }
                if present && !allowed.contains(&name) {
                    unexpected.push(name);
                }
                if !present && allowed.contains(&name) {
                    self.problem(format!("{what} ({}) needs `{name}`", gate.kind));
                }
            }
            if !unexpected.is_empty() {
                self.problem(format!(
                    "{what} ({}) does not take {}",
                    gate.kind,
                    unexpected.join(", ")
                ));
            }
            match gate.kind {
                GateKind::AllRunsPass => gates.push(Gate::AllRunsPass),
                GateKind::FieldEquals => {
                    let (Some(field), Some(value)) = (&gate.field, &gate.value) else {
                        continue;
                    };
                    let Some(index) = self.field_index(field) else {
                        self.problem(format!(
                            "{what} refers to unknown result_line field {field:?}"
                        ));
                        continue;
                    };
                    let kind = spec.result_line.fields[index].kind;
                    if let Some(expectation) =
                        self.resolve_expectation(&format!("{what} value"), value, kind)
                    {
                        gates.push(Gate::FieldEquals {
                            field: index,
                            expectation,
                        });
                    }
                }
                GateKind::SpeedupAtLeast => {
                    let (Some(id), Some(threshold)) = (&gate.speedup, gate.threshold) else {
                        continue;
                    };
                    if !(threshold.is_finite() && threshold > 0.0) {
                        self.problem(format!(
                            "{what}: threshold {threshold} must be a positive number"
                        ));
                    }
                    match spec.speedups.iter().position(|speedup| &speedup.id == id) {
                        Some(index) => {
                            gated_speedups.insert(index);
                            if speedups.get(index).is_some_and(Option::is_some) {
                                gates.push(Gate::SpeedupAtLeast {
                                    speedup: index,
                                    threshold,
                                });
                            }
                        }
                        None => self.problem(format!("{what} refers to unknown speedup {id:?}")),
                    }
                }
                GateKind::RatioAtLeast => {
                    let (Some(id), Some(threshold)) = (&gate.ratio, gate.threshold) else {
                        continue;
                    };
                    if !(threshold.is_finite() && threshold > 0.0) {
                        self.problem(format!(
                            "{what}: threshold {threshold} must be a positive number"
                        ));
                    }
                    match spec.ratios.iter().position(|ratio| &ratio.id == id) {
                        Some(index) => {
                            gated_ratios.insert(index);
                            if let Some(Some(ratio)) = ratios.get(index) {
                                gated_speedups.insert(ratio.speedup);
                                gated_speedups.insert(ratio.reference);
                                gates.push(Gate::RatioAtLeast {
                                    ratio: index,
                                    threshold,
                                });
                            }
                        }
                        None => self.problem(format!("{what} refers to unknown ratio {id:?}")),
                    }
                }
            }
        }
        for (index, ratio) in spec.ratios.iter().enumerate() {
            if !gated_ratios.contains(&index) && !ratio.diagnostic {
                self.problem(format!(
                    "missing gate: ratio {:?} has no ratio_at_least gate (mark it diagnostic: true to report it without one)",
                    ratio.id
                ));
            }
        }
        for (index, speedup) in spec.speedups.iter().enumerate() {
            if !gated_speedups.contains(&index) && !speedup.diagnostic {
                self.problem(format!(
                    "missing gate: speedup {:?} has no speedup_at_least gate (a speedup without a threshold claims nothing; mark it diagnostic: true to report it anyway)",
                    speedup.id
                ));
            }
        }
        gates
    }
}

/// Letters, digits, '-' and '_', non-empty: safe in paths and CSV headers.
fn is_identifier(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
