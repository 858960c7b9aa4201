//! `init`: start every autostart process of the boot manifest, wait for each
//! in order and report how it ended.
//!
//! Slots: 0 console, 1 process-spawner, 2 boot-manifest. Init's manifest
//! argument string (written by the host packer) lists the autostart process
//! names, space-separated, in manifest order, followed by the `user.` boot
//! options as `key=value` words, which are not names and are skipped.
//! Children get no extra grants:
//! the kernel gives each its manifest-declared capabilities.
//!
//! Lines: `[init] spawned <name>` (or `[init] <name> spawn-error=<error>`),
//! `[init] <name> exit=<status>` per child, then
//! `[init] done children=<n> failed=<k>`. Exits 0 iff every child exited 0.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use capos_runtime::{println, CapabilityHandle, Context, Error};

capos_runtime::entry!(main);

const SPAWNER_SLOT: u16 = 1;
const MANIFEST_SLOT: u16 = 2;

fn main(context: &mut Context) -> i32 {
    let spawner = context.capability(SPAWNER_SLOT);
    let manifest = context.capability(MANIFEST_SLOT);
    let names = match context.ring().manifest_arguments(manifest) {
        Ok(names) => names,
        Err(error) => {
            println!(context, "[init] error: manifest-read {}", error.name());
            return 1;
        }
    };

    let mut children: Vec<(&str, Result<CapabilityHandle, Error>)> = Vec::new();
    for name in names
        .split_ascii_whitespace()
        .filter(|word| !word.contains('='))
    {
        let spawned = context.ring().spawn(spawner, name, &[]);
        match spawned {
            Ok(_) => println!(context, "[init] spawned {name}"),
            Err(error) => println!(context, "[init] {name} spawn-error={}", error.name()),
        }
        children.push((name, spawned));
    }

    let mut failed = 0;
    for (name, spawned) in &children {
        let Ok(process) = spawned else {
            failed += 1;
            continue;
        };
        match context.ring().wait(*process) {
            Ok(status) => {
                println!(context, "[init] {name} exit={status}");
                if status != 0 {
                    failed += 1;
                }
            }
            Err(error) => {
                println!(context, "[init] {name} wait-error={}", error.name());
                failed += 1;
            }
        }
        // The slot is worth more than the handle now; a failure here only
        // means the kernel already reclaimed it.
        let _ = context.ring().drop_capability(*process);
    }
    println!(
        context,
        "[init] done children={} failed={failed}",
        children.len()
    );
    i32::from(failed != 0)
}
