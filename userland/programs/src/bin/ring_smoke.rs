//! `ring-smoke`: the ring protocol end to end. Slot 0: console.
//!
//! Cases, one line each: a `Nop` round trip (`[ring] nop ok`); 32 `Nop`s in
//! one batch and one `cap_enter(32)` (`[ring] batch=32 ok`); completion
//! overflow — 64 then 16 `Nop`s without consuming, so the kernel must hold
//! the 16 back until the completion queue is drained, and all 80 arrive
//! exactly once (`[ring] overflow submitted=80 completed=80 ok`). Then
//! `[ring] done`, exit 0; on any failure `[ring] FAILED ...` and exit 1.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use capos_abi::{ring::CQ_ENTRIES, ring::SQ_ENTRIES, NO_TIMEOUT};
use capos_runtime::{println, Context, Opcode, Ring, Submission};

capos_runtime::entry!(main);

const BATCH: u32 = 32;
const FIRST_WAVE: u32 = 64;
const SECOND_WAVE: u32 = 16;

/// A case returns its success line or what went wrong.
type Case = fn(&mut Ring) -> Result<String, String>;

fn main(context: &mut Context) -> i32 {
    let cases: [(&str, Case); 3] = [
        ("nop", nop_round_trip),
        ("batch", batch),
        ("overflow", overflow),
    ];
    for (name, case) in cases {
        match case(context.ring()) {
            Ok(line) => println!(context, "[ring] {line}"),
            Err(problem) => {
                println!(context, "[ring] FAILED case={name} {problem}");
                return 1;
            }
        }
    }
    println!(context, "[ring] done");
    0
}

fn nop(user_data: u64) -> Submission {
    Submission {
        opcode: Opcode::Nop as u16,
        user_data,
        ..Submission::default()
    }
}

fn submit_nops(ring: &mut Ring, user_data: core::ops::Range<u64>) -> Result<(), String> {
    for value in user_data {
        // SAFETY: a Nop names no memory.
        unsafe { ring.submit(nop(value)) }
            .map_err(|_| format!("submission queue full at user_data={value}"))?;
    }
    Ok(())
}

/// Take every ready completion, marking `seen[user_data - first]`; any
/// unknown, duplicate or failed completion is an error. Returns the count.
fn drain(ring: &mut Ring, first: u64, seen: &mut [bool]) -> Result<u32, String> {
    let mut count = 0;
    while let Some(completion) = ring.next_completion() {
        let index = completion.user_data.wrapping_sub(first) as usize;
        if index >= seen.len() {
            return Err(format!("unexpected user_data={}", completion.user_data));
        }
        if seen[index] {
            return Err(format!("duplicate user_data={}", completion.user_data));
        }
        if completion.result != 0 {
            return Err(format!(
                "user_data={} result={}",
                completion.user_data, completion.result
            ));
        }
        seen[index] = true;
        count += 1;
    }
    Ok(count)
}

fn nop_round_trip(ring: &mut Ring) -> Result<String, String> {
    // SAFETY: a Nop names no memory.
    let completion = unsafe { ring.call(nop(1)) };
    if completion.user_data != 1 || completion.result != 0 {
        return Err(format!(
            "user_data={} result={}",
            completion.user_data, completion.result
        ));
    }
    Ok("nop ok".into())
}

fn batch(ring: &mut Ring) -> Result<String, String> {
    const FIRST: u64 = 100;
    submit_nops(ring, FIRST..FIRST + u64::from(BATCH))?;
    let available = ring
        .enter(BATCH, NO_TIMEOUT)
        .map_err(|error| format!("enter error={}", error.name()))?;
    if available < BATCH {
        return Err(format!("enter returned {available} < {BATCH}"));
    }
    let mut seen = [false; BATCH as usize];
    let completed = drain(ring, FIRST, &mut seen)?;
    if completed != BATCH {
        return Err(format!("completed={completed}"));
    }
    Ok(format!("batch={BATCH} ok"))
}

fn overflow(ring: &mut Ring) -> Result<String, String> {
    const FIRST: u64 = 1000;
    const TOTAL: u32 = FIRST_WAVE + SECOND_WAVE;
    const _: () = assert!(FIRST_WAVE == CQ_ENTRIES && FIRST_WAVE <= SQ_ENTRIES);
    let second = FIRST + u64::from(FIRST_WAVE);
    let mut seen = [false; TOTAL as usize];

    submit_nops(ring, FIRST..second)?;
    let available = ring
        .enter(FIRST_WAVE, NO_TIMEOUT)
        .map_err(|error| format!("first enter error={}", error.name()))?;
    if available != FIRST_WAVE {
        return Err(format!("first enter returned {available}"));
    }
    submit_nops(ring, second..second + u64::from(SECOND_WAVE))?;
    let available = ring
        .enter(0, NO_TIMEOUT)
        .map_err(|error| format!("second enter error={}", error.name()))?;
    let (head, tail) = ring.submission_indices();
    let held_back = tail.wrapping_sub(head);
    if available != CQ_ENTRIES || held_back != SECOND_WAVE {
        return Err(format!(
            "with a full completion queue: available={available} held_back={held_back}"
        ));
    }
    let mut completed = drain(ring, FIRST, &mut seen)?;
    ring.enter(SECOND_WAVE, NO_TIMEOUT)
        .map_err(|error| format!("third enter error={}", error.name()))?;
    completed += drain(ring, FIRST, &mut seen)?;
    if completed != TOTAL || seen.iter().any(|seen| !seen) {
        return Err(format!("submitted={TOTAL} completed={completed}"));
    }
    Ok(format!(
        "overflow submitted={TOTAL} completed={completed} ok"
    ))
}
