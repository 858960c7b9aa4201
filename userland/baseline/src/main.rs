//! `capos-baseline`: the Linux side of the capOS proofs, one static program
//! built from the same workload crate as the capOS programs.
//!
//! `capos-baseline <program> [--workers <n>] [--cpus <n>] [--blocks <n>]
//! [--expect <n>]`, program one of `smp-process-scale`, `thread-scale`
//! (`--workers` is the thread count; `--blocks` its size, `--expect` the
//! checksum the host computed for it), `user-bench` (which starts
//! `capos-empty`, beside it or at `/empty` in the guest).
//!
//! - As PID 1 it is the Linux guest's `/init` (`os=linux`): the kernel
//!   passes the words after `--` on its command line as arguments; it runs
//!   the program once, prints the result line on the console and powers
//!   the machine off (`reboot(RB_POWER_OFF)`), whatever happened.
//! - Otherwise it is the native baseline (`os=native`): `--cpus <n>` first
//!   pins it (and the workers it forks) to the first `n` CPUs it may use,
//!   or to all of them when there are fewer; the line reports the real
//!   count. Exit status 0 only for a verified result.
//!
//! Result lines are the capOS lines with `os=<os>` after the tag
//! (`capos_workloads::line`, `capos_workloads::bench`). Errors print one
//! `[capos-baseline] error: ...` line and no result line.

mod micro;
mod process_scale;
mod system;
mod thread_scale;

use std::io::Write;

/// Parsed command line.
#[derive(Debug, PartialEq, Eq)]
struct Arguments {
    program: String,
    workers: Option<u32>,
    cpus: Option<usize>,
    /// thread-scale's block count.
    blocks: Option<u32>,
    /// thread-scale's expected checksum (decimal).
    expect: Option<u64>,
}

fn parse(words: &[String]) -> Result<Arguments, String> {
    let (program, mut rest) =
        match words.split_first() {
            Some((program, rest)) => (program.clone(), rest),
            None => return Err(
                "usage: capos-baseline <smp-process-scale|thread-scale|user-bench> [--workers <n>] [--cpus <n>]"
                    .into(),
            ),
        };
    let mut arguments = Arguments {
        program,
        workers: None,
        cpus: None,
        blocks: None,
        expect: None,
    };
    while let Some((flag, tail)) = rest.split_first() {
        let Some((value, tail)) = tail.split_first() else {
            return Err(format!("{flag} needs a value"));
        };
        match flag.as_str() {
            "--blocks" => {
                arguments.blocks =
                    Some(value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("--blocks {value:?}: want a positive whole number")
                    })?);
                rest = tail;
                continue;
            }
            "--expect" => {
                arguments.expect = Some(
                    value
                        .parse()
                        .map_err(|_| format!("--expect {value:?}: want a decimal checksum"))?,
                );
                rest = tail;
                continue;
            }
            _ => {}
        }
        let number: u32 = value
            .parse()
            .ok()
            .filter(|n| (1..=64).contains(n))
            .ok_or_else(|| format!("{flag} {value:?}: want a whole number from 1 to 64"))?;
        match flag.as_str() {
            "--workers" => arguments.workers = Some(number),
            "--cpus" => arguments.cpus = Some(number as usize),
            _ => return Err(format!("unknown option {flag:?}")),
        }
        rest = tail;
    }
    Ok(arguments)
}

/// Run the chosen program; Ok(true) when its result verified.
fn run(arguments: &Arguments, os: &'static str) -> Result<bool, String> {
    if let Some(cpus) = arguments.cpus {
        let allowed =
            system::allowed_cpus().map_err(|error| format!("sched_getaffinity: {error}"))?;
        let chosen = &allowed[..cpus.min(allowed.len())];
        system::pin_to(chosen).map_err(|error| format!("sched_setaffinity: {error}"))?;
    }
    match arguments.program.as_str() {
        "smp-process-scale" => {
            let cpus =
                system::allowed_cpus().map_err(|error| format!("sched_getaffinity: {error}"))?;
            let workers = arguments.workers.unwrap_or(cpus.len() as u32);
            process_scale::run(os, cpus.len() as u32, workers)
        }
        "thread-scale" => {
            let cpus =
                system::allowed_cpus().map_err(|error| format!("sched_getaffinity: {error}"))?;
            let threads = arguments.workers.unwrap_or(cpus.len() as u32);
            thread_scale::run(
                os,
                cpus.len() as u32,
                threads,
                arguments.blocks,
                arguments.expect,
            )
        }
        "user-bench" => micro::run(os),
        other => Err(format!("unknown program {other:?}")),
    }
}

fn main() {
    let words: Vec<String> = std::env::args().skip(1).collect();
    let init = system::pid() == 1;
    let os = if init { "linux" } else { "native" };
    let verified = match parse(&words).and_then(|arguments| run(&arguments, os)) {
        Ok(verified) => verified,
        Err(message) => {
            println!("[capos-baseline] error: {message}");
            false
        }
    };
    let _ = std::io::stdout().flush();
    if init {
        system::power_off();
    }
    std::process::exit(if verified { 0 } else { 1 });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_programs_and_options() {
        assert_eq!(
            parse(&words("smp-process-scale --workers 4 --cpus 2")),
            Ok(Arguments {
                program: "smp-process-scale".into(),
                workers: Some(4),
                cpus: Some(2),
                blocks: None,
                expect: None,
            })
        );
        let sized = parse(&words("thread-scale --blocks 1048576 --expect 12345")).unwrap();
        assert_eq!(
            (sized.blocks, sized.expect),
            (Some(1_048_576), Some(12_345))
        );
        assert!(parse(&words("thread-scale --blocks 0")).is_err());
        assert!(parse(&words("thread-scale --expect 0x12")).is_err());
        assert!(parse(&words("")).is_err());
        assert!(parse(&words("smp-process-scale --workers")).is_err());
        assert!(parse(&words("smp-process-scale --workers 0")).is_err());
        assert!(parse(&words("smp-process-scale --threads 2")).is_err());
    }

    #[test]
    fn unknown_programs_are_errors() {
        let arguments = parse(&words("fortune")).unwrap();
        assert!(run(&arguments, "native")
            .unwrap_err()
            .contains("unknown program"));
    }
}
