//! `fpu-state`: a thread's FPU state survives every way of leaving user
//! mode as the ABI promises, and nothing of the kernel's or another
//! thread's shows through. Slots: 0 console, 1 thread-spawner.
//!
//! [`THREADS`] threads of one process (this one and its siblings, more than
//! the CPUs of the smoke runs, so they are preempted and move between
//! CPUs) each run [`ROUNDS`] rounds. A round loads a pattern unique to the
//! thread and round into XMM0-15, MXCSR (rounding mode), the x87 control
//! word (precision control), the x87 stack top and the caller-saved
//! general registers RDX and R8-R10, then leaves user mode one of three
//! ways, and stores the registers back:
//! - `nop`: `cap_enter(0, 0)`, a system call that returns at once (the
//!   kernel runs compiled code, which uses SSE registers, and returns);
//! - `block`: `cap_enter(1, 200 us)` with nothing submitted, so the thread
//!   blocks, other threads run on its CPU, and it may resume on another;
//! - `spin`: an integer-only loop of [`SPIN_CYCLES`] TSC cycles, longer
//!   than a 10 ms tick, so timer interrupts (and preemption) land in it.
//!
//! After an interrupt every register must come back as loaded. A system
//! call is a C call (docs/abi.md): MXCSR and the x87 state must come back
//! as loaded, and XMM0-15, RDX, RSI, RDI and R8-R10 must come back zero
//! (whatever the kernel left there would show through). Line:
//! `[fpu-state] threads=<n> rounds=<n> checked=<n> ok`, or
//! `[fpu-state] FAILED thread=<t> round=<r> way=<w> <register> ...`
//! (exit 1).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::Syscall;
use capos_runtime::thread;
use capos_runtime::{println, Context};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
/// Threads, the first one included.
const THREADS: u64 = 4;
/// Rounds per thread; every fourth spins across a tick.
const ROUNDS: u64 = 120;
/// Longest spin, in TSC cycles: over 10 ms at any TSC rate above 3 GHz,
/// and at least one 100 Hz tick at the rates of the machines we run on.
const SPIN_CYCLES: u32 = 40_000_000;
/// The blocking wait, in nanoseconds.
const BLOCK_NS: u32 = 200_000;
/// What Rust code expects: every SIMD exception masked, round to nearest.
const DEFAULT_MXCSR: u32 = 0x1F80;
/// x87 default: every exception masked, 64-bit precision, round to nearest.
const DEFAULT_CONTROL_WORD: u16 = 0x037F;

/// The registers a round loads and stores back. Offsets are used by the
/// assembly: XMMn at 16n, MXCSR at 256, x87 control word at 260, x87 stack
/// top (as a double) at 264, the defaults to restore at 272 and 276, the
/// general registers RDX, RSI, RDI, R8, R9, R10 at 280 + 8n (only RDX and
/// R8-R10 are loaded: RSI and RDI carry the system call's arguments).
#[repr(C, align(16))]
#[derive(Clone, Copy, PartialEq, Eq, Default)]
struct Registers {
    xmm: [[u64; 2]; 16],
    mxcsr: u32,
    control_word: u16,
    pad: u16,
    x87_top: u64,
    default_mxcsr: u32,
    default_control_word: u16,
    pad2: u16,
    general: [u64; 6],
}

/// How a round leaves user mode.
#[derive(Clone, Copy, Debug)]
enum Way {
    Nop,
    Block,
    Spin,
}

impl Way {
    fn of_round(round: u64) -> Self {
        match round % 4 {
            3 => Self::Spin,
            1 => Self::Block,
            _ => Self::Nop,
        }
    }

    fn code(self) -> u64 {
        match self {
            Self::Nop => 0,
            Self::Block => 1,
            Self::Spin => 2,
        }
    }
}

/// The pattern of `thread` in `round`: distinct in every lane, register,
/// thread and round; a valid MXCSR and control word; an exact double.
fn pattern(thread: u64, round: u64) -> Registers {
    let mut registers = Registers::default();
    for (index, lanes) in registers.xmm.iter_mut().enumerate() {
        let base = (thread << 48) | (round << 16) | ((index as u64) << 8);
        *lanes = [base | 0xA5, !base];
    }
    // Rounding control (bits 13-14) varies; the exceptions stay masked.
    registers.mxcsr = DEFAULT_MXCSR | (((thread + round) as u32 & 3) << 13);
    // Precision control (bits 8-9): single (00), double (10), extended (11).
    let precision = [0u16, 2, 3][((thread + round) % 3) as usize];
    registers.control_word = (DEFAULT_CONTROL_WORD & !0x0300) | (precision << 8);
    registers.x87_top = ((thread * 1000 + round) as f64 + 0.5).to_bits();
    registers.default_mxcsr = DEFAULT_MXCSR;
    registers.default_control_word = DEFAULT_CONTROL_WORD;
    for (index, register) in registers.general.iter_mut().enumerate() {
        *register = (thread << 48) | (round << 16) | 0x6E00 | index as u64;
    }
    registers
}

/// What must come back after a round of `input` left user mode `way`.
fn expected(input: &Registers, way: Way) -> Registers {
    match way {
        // An interrupt: the thread's state, whole. Of the general registers
        // R9 and R10 carry the pattern across the spin; the loop itself
        // uses RDX and R8, and RSI/RDI carry nothing there (the assembly
        // zeroes those four).
        Way::Spin => Registers {
            general: [0, 0, 0, 0, input.general[4], input.general[5]],
            ..*input
        },
        // A system call: callee-saved state kept, caller-saved zero.
        Way::Nop | Way::Block => Registers {
            xmm: [[0; 2]; 16],
            general: [0; 6],
            ..*input
        },
    }
}

/// Load `input`, leave user mode `way`, store into `output`; restores the
/// default MXCSR and control word before it returns.
fn round_trip(input: &Registers, output: &mut Registers, way: Way) {
    // SAFETY: reads only `input` and writes only `output` (both aligned to
    // 16, offsets as documented on `Registers`); the x87 stack is pushed
    // once and popped once; MXCSR and the control word get their defaults
    // back; every vector and x87 register is declared clobbered, and so are
    // the general registers it loads or the system call and RDTSC change. `cap_enter(0, 0)` and
    // `cap_enter(1, timeout)` with nothing submitted name no memory.
    unsafe {
        core::arch::asm!(
            "ldmxcsr [{input} + 256]",
            "fldcw [{input} + 260]",
            "fld qword ptr [{input} + 264]",
            "mov rdx, [{input} + 280]",
            "mov r8, [{input} + 304]",
            "mov r9, [{input} + 312]",
            "mov r10, [{input} + 320]",
            "movaps xmm0, [{input}]",
            "movaps xmm1, [{input} + 16]",
            "movaps xmm2, [{input} + 32]",
            "movaps xmm3, [{input} + 48]",
            "movaps xmm4, [{input} + 64]",
            "movaps xmm5, [{input} + 80]",
            "movaps xmm6, [{input} + 96]",
            "movaps xmm7, [{input} + 112]",
            "movaps xmm8, [{input} + 128]",
            "movaps xmm9, [{input} + 144]",
            "movaps xmm10, [{input} + 160]",
            "movaps xmm11, [{input} + 176]",
            "movaps xmm12, [{input} + 192]",
            "movaps xmm13, [{input} + 208]",
            "movaps xmm14, [{input} + 224]",
            "movaps xmm15, [{input} + 240]",
            "cmp {way}, 1",
            "jb 2f",
            "je 3f",
            // Spin on the TSC, integer registers only.
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "mov r8, rax",
            "4:",
            "rdtsc",
            "shl rdx, 32",
            "or rax, rdx",
            "sub rax, r8",
            "cmp rax, {spin}",
            "jb 4b",
            "xor edx, edx",
            "xor r8d, r8d",
            "xor esi, esi",
            "xor edi, edi",
            "jmp 5f",
            "2:",
            "mov eax, {enter}",
            "xor edi, edi",
            "xor esi, esi",
            "syscall",
            "jmp 5f",
            "3:",
            "mov eax, {enter}",
            "mov edi, 1",
            "mov esi, {block}",
            "syscall",
            "5:",
            "mov [{output} + 280], rdx",
            "mov [{output} + 288], rsi",
            "mov [{output} + 296], rdi",
            "mov [{output} + 304], r8",
            "mov [{output} + 312], r9",
            "mov [{output} + 320], r10",
            "movaps [{output}], xmm0",
            "movaps [{output} + 16], xmm1",
            "movaps [{output} + 32], xmm2",
            "movaps [{output} + 48], xmm3",
            "movaps [{output} + 64], xmm4",
            "movaps [{output} + 80], xmm5",
            "movaps [{output} + 96], xmm6",
            "movaps [{output} + 112], xmm7",
            "movaps [{output} + 128], xmm8",
            "movaps [{output} + 144], xmm9",
            "movaps [{output} + 160], xmm10",
            "movaps [{output} + 176], xmm11",
            "movaps [{output} + 192], xmm12",
            "movaps [{output} + 208], xmm13",
            "movaps [{output} + 224], xmm14",
            "movaps [{output} + 240], xmm15",
            "stmxcsr [{output} + 256]",
            "fnstcw [{output} + 260]",
            "fstp qword ptr [{output} + 264]",
            "ldmxcsr [{input} + 272]",
            "fldcw [{input} + 276]",
            input = in(reg) input as *const Registers,
            output = in(reg) output as *mut Registers,
            way = in(reg) way.code(),
            spin = const SPIN_CYCLES,
            block = const BLOCK_NS,
            enter = const Syscall::CapEnter as u32,
            out("rax") _, out("rcx") _, out("rdx") _, out("rdi") _, out("rsi") _,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
            out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
            out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
            out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
            out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
            out("st(0)") _, out("st(1)") _, out("st(2)") _, out("st(3)") _,
            out("st(4)") _, out("st(5)") _, out("st(6)") _, out("st(7)") _,
        );
    }
}

/// The first register of `seen` that differs from `expected`.
fn difference(expected: &Registers, seen: &Registers) -> Option<String> {
    for (index, (want, got)) in expected.xmm.iter().zip(&seen.xmm).enumerate() {
        if want != got {
            return Some(format!(
                "xmm{index}={:#018x}:{:#018x} expected={:#018x}:{:#018x}",
                got[1], got[0], want[1], want[0]
            ));
        }
    }
    if expected.mxcsr != seen.mxcsr {
        return Some(format!(
            "mxcsr={:#x} expected={:#x}",
            seen.mxcsr, expected.mxcsr
        ));
    }
    if expected.control_word != seen.control_word {
        return Some(format!(
            "x87-control={:#x} expected={:#x}",
            seen.control_word, expected.control_word
        ));
    }
    const GENERAL: [&str; 6] = ["rdx", "rsi", "rdi", "r8", "r9", "r10"];
    for ((name, want), got) in GENERAL.iter().zip(&expected.general).zip(&seen.general) {
        if want != got {
            return Some(format!("{name}={got:#018x} expected={want:#018x}"));
        }
    }
    if expected.x87_top != seen.x87_top {
        return Some(format!(
            "x87-top={:#x} expected={:#x}",
            seen.x87_top, expected.x87_top
        ));
    }
    None
}

/// All rounds of thread `index`: the rounds checked, or the first mismatch.
fn run_thread(index: u64) -> Result<u64, String> {
    for round in 0..ROUNDS {
        let input = pattern(index, round);
        let mut output = Registers {
            default_mxcsr: DEFAULT_MXCSR,
            default_control_word: DEFAULT_CONTROL_WORD,
            ..Registers::default()
        };
        let way = Way::of_round(round);
        round_trip(&input, &mut output, way);
        if let Some(problem) = difference(&expected(&input, way), &output) {
            return Err(format!(
                "thread={index} round={round} way={way:?} {problem}"
            ));
        }
    }
    Ok(ROUNDS)
}

fn main(context: &mut Context) -> i32 {
    match run(context) {
        Ok(checked) => {
            println!(
                context,
                "[fpu-state] threads={THREADS} rounds={ROUNDS} checked={checked} ok"
            );
            0
        }
        Err(problem) => {
            println!(context, "[fpu-state] FAILED {problem}");
            1
        }
    }
}

/// Exit value of a sibling whose check failed (it printed why).
const SIBLING_FAILED: i64 = -1;

fn run(context: &mut Context) -> Result<u64, String> {
    let spawner = context.capability(SPAWNER_SLOT);
    let mut handles = Vec::new();
    for index in 1..THREADS {
        let handle = thread::spawn(
            context,
            spawner,
            |context, index| match run_thread(index) {
                Ok(checked) => checked as i64,
                Err(problem) => {
                    println!(context, "[fpu-state] FAILED {problem}");
                    SIBLING_FAILED
                }
            },
            index,
        )
        .map_err(|error| format!("spawn: {}", error.name()))?;
        handles.push(handle);
    }
    let mut checked = run_thread(0)?;
    for (index, handle) in handles.into_iter().enumerate() {
        let value = handle
            .join(context)
            .map_err(|error| format!("join: {}", error.name()))?;
        if value == SIBLING_FAILED {
            return Err(format!("thread={} failed (above)", index + 1));
        }
        checked += value as u64;
    }
    Ok(checked)
}
