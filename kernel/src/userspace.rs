//! Boot of user space: the boot archive GRUB loaded (every program and packed
//! manifest), the selected manifest's objects, init, and the end of the run.
//!
//! The archive is the one boot module whose command line is `archive`; it is
//! checked whole at boot (`kcore::boot_archive`), so a malformed archive
//! stops the boot with a line naming the fault, before any CPU starts user
//! code. Its entries are then indexed (two name-ordered lists of slices into
//! the archive), so a spawn finds its program by binary search.
//! The boot option `manifest=<name>` selects the manifest; the kernel
//! creates its objects, starts its init process, and ends the QEMU run when
//! init exits (success iff init's exit code is 0).

use crate::objects::{Endpoint, EndpointRights, KernelObject};
use crate::platform::interrupts::InterruptFrame;
use crate::process::Process;
use crate::{kprintln, mem, platform, sched};
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::manifest::{Grant, Manifest};
use capos_abi::CapabilityKind;
use capos_kcore::boot_archive::{BootArchive, Entry, EntryKind};
use core::sync::atomic::{AtomicU64, Ordering};
use multiboot2::BootInformation;
use spin::Once;

/// The boot archive's entries by kind, each list in name order (the
/// archive's own order), so a spawn finds its program by binary search.
struct ArchiveIndex {
    programs: Vec<Entry<'static>>,
    manifests: Vec<Entry<'static>>,
}

impl ArchiveIndex {
    fn new(archive: BootArchive<'static>) -> Self {
        let (manifests, programs) = archive
            .entries()
            .partition(|entry| entry.kind == EntryKind::Manifest);
        Self {
            programs,
            manifests,
        }
    }

    fn list(&self, kind: EntryKind) -> &[Entry<'static>] {
        match kind {
            EntryKind::Program => &self.programs,
            EntryKind::Manifest => &self.manifests,
        }
    }

    /// The bytes of the `kind` entry called `name`.
    fn find(&self, kind: EntryKind, name: &str) -> Option<&'static [u8]> {
        let list = self.list(kind);
        let index = list.binary_search_by(|entry| entry.name.cmp(name)).ok()?;
        list.get(index).map(|entry| entry.data)
    }
}

static ARCHIVE: Once<ArchiveIndex> = Once::new();
static MANIFEST: Once<Manifest<'static>> = Once::new();
static ENDPOINTS: Once<Vec<Option<Arc<Endpoint>>>> = Once::new();
static SPAWNS: AtomicU64 = AtomicU64::new(0);
/// ` key=value` for every boot option `user.key=value`, in order.
static USER_OPTIONS: Once<String> = Once::new();

/// Record the boot options meant for user programs: every `user.<key>=<value>`
/// becomes ` <key>=<value>` at the end of every process's arguments.
pub fn set_user_options(cmdline: &str) {
    USER_OPTIONS.call_once(|| {
        let mut text = String::new();
        for word in cmdline.split_whitespace() {
            if let Some(option) = word.strip_prefix("user.") {
                if option.contains('=') && !option.starts_with('=') {
                    text.push(' ');
                    text.push_str(option);
                }
            }
        }
        text
    });
}

/// The command-line word that marks the boot archive module.
const ARCHIVE_MODULE: &str = "archive";

/// Find and check the boot archive (call once at boot). Fails the boot when
/// there is none, more than one, or a malformed one.
pub fn load_archive(boot_info: &BootInformation) {
    let mut found = None;
    for tag in boot_info.module_tags() {
        let Ok(cmdline) = tag.cmdline() else { continue };
        // A loader may put the file path first.
        if !cmdline
            .split_whitespace()
            .any(|word| word == ARCHIVE_MODULE)
        {
            continue;
        }
        if found.is_some() {
            kprintln!("[boot] error: more than one boot archive module");
            platform::exit::failure()
        }
        found = Some(tag);
    }
    let Some(tag) = found else {
        kprintln!("[boot] error: no boot archive module (a GRUB module2 line ending in `{ARCHIVE_MODULE}`)");
        platform::exit::failure()
    };
    let start = u64::from(tag.start_address());
    let length = tag.end_address().saturating_sub(tag.start_address()) as usize;
    let Some(bytes) = mem::physical_slice(start, length) else {
        kprintln!("[boot] error: the boot archive at {start:#x} lies outside mapped memory");
        platform::exit::failure()
    };
    match BootArchive::parse(bytes) {
        Ok(archive) => {
            let index = ARCHIVE.call_once(|| ArchiveIndex::new(archive));
            kprintln!(
                "[boot] archive bytes={} programs={} manifests={}",
                bytes.len(),
                index.programs.len(),
                index.manifests.len()
            );
        }
        Err(error) => {
            kprintln!("[boot] error: boot archive: {error}");
            platform::exit::failure()
        }
    }
}

/// The ELF image of program `name`.
pub fn module(name: &str) -> Option<&'static [u8]> {
    ARCHIVE.get()?.find(EntryKind::Program, name)
}

/// The active manifest.
pub fn manifest() -> Option<Manifest<'static>> {
    MANIFEST.get().copied()
}

/// The object a manifest grant names.
pub fn object_for(grant: Grant) -> Option<KernelObject> {
    Some(match grant.kind {
        CapabilityKind::Console => KernelObject::Console,
        CapabilityKind::ProcessSpawner => KernelObject::ProcessSpawner,
        CapabilityKind::Timer => KernelObject::Timer,
        CapabilityKind::BootManifest => KernelObject::BootManifest,
        CapabilityKind::Endpoint | CapabilityKind::EndpointServer => {
            let endpoint = ENDPOINTS.get()?.get(grant.object? as usize)?.clone()?;
            let rights = if grant.kind == CapabilityKind::EndpointServer {
                EndpointRights::SERVE
            } else {
                EndpointRights::CALL
            };
            KernelObject::Endpoint(endpoint, rights)
        }
        CapabilityKind::Diagnostics => KernelObject::Diagnostics,
        CapabilityKind::ThreadSpawner => KernelObject::ThreadSpawner,
        CapabilityKind::ParkSpace => KernelObject::ParkSpace,
        CapabilityKind::Memory => KernelObject::Memory,
        CapabilityKind::ProcessHandle | CapabilityKind::ThreadHandle => return None,
    })
}

/// A process's argument string: its manifest arguments (init without
/// explicit arguments gets the names of the autostart processes, space
/// separated), then the `user.` boot options.
pub fn arguments_for(entry: &capos_abi::manifest::Process) -> String {
    let mut arguments = manifest_arguments(entry);
    if let Some(options) = USER_OPTIONS.get() {
        arguments.push_str(options);
    }
    arguments
}

fn manifest_arguments(entry: &capos_abi::manifest::Process) -> String {
    let Some(manifest) = manifest() else {
        return String::from(entry.arguments);
    };
    let is_init = manifest
        .process(manifest.init())
        .is_some_and(|init| init.name == entry.name);
    if !is_init || !entry.arguments.is_empty() {
        return String::from(entry.arguments);
    }
    let names: Vec<&str> = (0..manifest.process_count())
        .filter_map(|index| manifest.process(index))
        .filter(|process| process.autostart)
        .map(|process| process.name)
        .collect();
    names.join(" ")
}

/// Load manifest `name`, create its objects and start init. Fails the boot
/// with a clear line when anything is missing or malformed.
///
/// `bsp_delay_ms` (boot option, tests only) keeps this CPU busy right after
/// init's thread is queued, so init can run and even exit on another CPU
/// before this function returns.
pub fn start(name: &str, bsp_delay_ms: u64) {
    let Some(bytes) = ARCHIVE
        .get()
        .and_then(|archive| archive.find(EntryKind::Manifest, name))
    else {
        let available: Vec<&str> = ARCHIVE
            .get()
            .map(|archive| archive.manifests.iter().map(|entry| entry.name).collect())
            .unwrap_or_default();
        kprintln!(
            "[user] error: no manifest {name:?} in the boot archive (available: {available:?})"
        );
        platform::exit::failure()
    };
    let manifest = match Manifest::parse(bytes) {
        Ok(manifest) => *MANIFEST.call_once(|| manifest),
        Err(error) => {
            kprintln!("[user] error: manifest {name}: {error}");
            platform::exit::failure()
        }
    };
    ENDPOINTS.call_once(|| {
        (0..manifest.object_count())
            .map(|index| {
                manifest
                    .object(index)
                    .filter(|object| object.kind == CapabilityKind::Endpoint)
                    .map(|_| Endpoint::new())
            })
            .collect()
    });
    let Some(init) = manifest.process(manifest.init()) else {
        kprintln!("[user] error: manifest {name} has no init process");
        platform::exit::failure()
    };
    kprintln!(
        "[user] manifest={name} processes={} objects={} init={}",
        manifest.process_count(),
        manifest.object_count(),
        init.name
    );
    match crate::process::spawn_init(init.name) {
        Ok(_) => platform::apic::delay_microseconds(bsp_delay_ms.min(10_000) * 1000),
        Err(error) => {
            kprintln!(
                "[user] error: starting init {}: {}",
                init.name,
                error.name()
            );
            platform::exit::failure()
        }
    }
}

/// Called once per process exit: endpoints forget it (callers it owed a
/// reply get `PeerGone`); ends the run when init exits.
pub fn process_exited(process: &Process, code: i64) {
    for endpoint in ENDPOINTS.get().into_iter().flatten().flatten() {
        endpoint.process_exited(process.id);
    }
    if process.is_init {
        let counters = crate::diagnostics::counters();
        kprintln!(
            "[kernel] init exited code={code} spawns={} queued={} live_processes={} live_threads={} timer_waiters={} endpoint_waiters={} free_frames={} heap_used={}",
            SPAWNS.load(Ordering::Relaxed),
            sched::queued(),
            counters.live_processes,
            counters.live_threads,
            counters.timer_waiters,
            counters.endpoint_waiters,
            counters.free_frames,
            counters.heap_used_bytes
        );
        if code == 0 {
            platform::exit::success()
        } else {
            platform::exit::failure()
        }
    }
}

/// Count a successful spawn (diagnostics).
pub fn note_spawn() {
    SPAWNS.fetch_add(1, Ordering::Relaxed);
}

/// A CPU exception in user mode: report it, end only that process.
pub fn user_fault(frame: &InterruptFrame, name: &str) -> ! {
    let cr2 = x86_64::registers::control::Cr2::read_raw();
    let cpu = platform::percpu::current().index;
    let Some(thread) = sched::current() else {
        kprintln!("[fault] cpu={cpu} user-mode fault without a current thread");
        platform::exit::failure()
    };
    kprintln!(
        "[fault] process={} pid={} cpu={cpu} vector={} name={name} error={:#x} rip={:#x} addr={cr2:#x}",
        thread.process.name,
        thread.process.id,
        frame.vector,
        frame.error_code,
        frame.rip
    );
    let code = -(128 + frame.vector as i64);
    thread
        .process
        .exit(crate::process::ExitStatus::killed(code));
    crate::thread::exit_current(Arc::clone(&thread), code)
}
