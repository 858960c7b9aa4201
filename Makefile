# Thin wrappers: every target calls the `capos` CLI (evidence/) or cargo.
# Nothing here re-implements what the CLI does.

CAPOS := cargo run --quiet --release --locked -p capos-evidence --bin capos --

.PHONY: deps iso kernel test lint run-smp-boot run-smp-process-scale run-thread-scale run-smokes run-smp2-smokes run-user-bench fuzz soak

deps:
	@ci/install-deps

kernel: deps
	$(CAPOS) build kernel

iso: deps
	$(CAPOS) build iso

## Main job: boot at -smp 1/2/4, store a signed evidence bundle.
run-smp-boot: deps
	$(CAPOS) run smp-boot

lint: deps
	cargo fmt --all -- --check
	cargo clippy --locked --workspace --exclude capos-kernel --exclude capos-programs --all-targets -- -D warnings
	# Bare-metal crates alone: in a whole-workspace build the host crates turn
	# on `std` in shared dependencies (digest), which they cannot link.
	cargo clippy --locked -p capos-kernel -- -D warnings
	cargo clippy --locked -p capos-kernel --features measure -- -D warnings
	cargo clippy --locked -p capos-programs -- -D warnings
	ci/check-flake

## Guest-cycle costs of a null ring op, an endpoint call, spawn-to-exit (signed bundle).
run-user-bench: deps
	$(CAPOS) run user-bench

## In-QEMU smoke suite (userland/smokes.yaml) at -smp 1 and -smp 2; ends with `N passed, N failed`.
run-smokes: deps
	$(CAPOS) smokes --smp 1

run-smp2-smokes: deps
	$(CAPOS) smokes --smp 2

## The random submission fuzzer at -smp 2: one boot per seed, FUZZ_OPS submissions each.
FUZZ_SEEDS ?= 1,2,3,4,5
FUZZ_OPS ?= 100000
fuzz: deps
	$(CAPOS) fuzz --seeds $(FUZZ_SEEDS) --ops $(FUZZ_OPS) --smp 2

## SOAK_BOOTS boots of the whole smoke suite at -smp 2, counting failures (not part of `make test`).
SOAK_BOOTS ?= 200
soak: deps
	$(CAPOS) soak --boots $(SOAK_BOOTS) --smp 2

## Tests: lint, flake checks, host unit tests, in-QEMU tests, then the smoke
## suites at -smp 1, 2 and 4 (which include the hostile smokes and a short fuzz, 2 seeds x 5,000
## ops). Ends with the smoke runner's `N passed, N failed` line.
test: lint
	cargo test --locked --workspace
	$(CAPOS) smokes --smp 1
	$(CAPOS) smokes --smp 2
	$(CAPOS) smokes --smp 4

## Independent worker processes at -smp 1/2/4 beside the Linux guest and
## native baselines, interleaved in one signed bundle (seed name).
## CAPOS_SMP_SCALE_RUNS sets the repetitions (a number, or auto / auto:<cap> / auto:<cap>:<width>%
## for rounds until every gated interval is narrow); exit 2 = inconclusive.
run-smp-process-scale: deps
	$(CAPOS) run smp-process-scale

## Sibling threads of one process at -smp 1/2/4 beside the Linux guest and
## native pthread baselines, interleaved in one signed bundle (seed name).
## CAPOS_THREAD_SCALE_RUNS sets the repetitions (a number, auto, auto:<cap>:<width>% or
## auto:<cap>); CAPOS_THREAD_SCALE_TOTAL_BLOCKS the workload size;
## CAPOS_THREAD_SCALE_REQUIRE_TOTAL_SPEEDUP=1 requires the total gate; exit
## 2 = inconclusive. See docs/evidence.md and docs/benchmarks.md.
run-thread-scale: deps
	$(CAPOS) run thread-scale
