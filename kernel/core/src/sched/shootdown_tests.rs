//! Randomized model of the TLB shootdown protocol of `docs/scheduler.md`: CPU 0 runs a
//! thread of address space S and unmaps a page again and again; CPUs 1 to 7 switch between S
//! and another address space one instruction-sized step at a time, go idle keeping S loaded,
//! and serve shootdown IPIs at any moment. Checked:
//! - `stale`: when [`Shootdown`] says complete, no CPU with S loaded has gone without a flush
//!   since the page-table change (so the frame may be freed);
//! - `stuck`: once every CPU has finished its switch and served its IPIs, every shootdown
//!   completes;
//! - `mask`: S's mask holds every CPU that has S loaded.

use super::*;
use proptest::prelude::*;

/// What is in a CPU's CR3.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loaded {
    /// The address space whose page is unmapped.
    Target,
    /// Another process.
    Other,
    /// The kernel table (after an unload).
    Kernel,
}

/// One step of a CPU's switch, in the documented order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SwitchStep {
    /// Set this CPU in S's mask (SeqCst).
    SetBit,
    /// Read S's flush generation.
    ReadGeneration,
    /// Write CR3 (flushes every non-global entry).
    WriteCr3(Loaded),
    /// Publish the generation read as flushed (fetch_max).
    Publish,
    /// Clear this CPU from S's mask.
    ClearBit,
}

#[derive(Clone, Debug)]
struct Cpu {
    loaded: Loaded,
    idle: bool,
    /// Step time of the last flush of S's translations on this CPU.
    last_flush: u64,
    flushed_generation: u64,
    generation_read: u64,
    plan: Vec<SwitchStep>,
    /// Generation of a shootdown IPI waiting to be served.
    pending: Option<u64>,
}

#[derive(Clone, Debug)]
enum Event {
    /// CPU `cpu` takes one switch step, or starts a switch (to S when `to_target`).
    Switch { cpu: u8, to_target: bool },
    /// CPU `cpu` runs no thread any more (keeps its CR3).
    GoIdle { cpu: u8 },
    /// CPU `cpu` serves its pending IPI (interrupts on, or a spin loop polling).
    Serve { cpu: u8 },
    /// The initiator changes the PTE, bumps the generation, flushes locally.
    Unmap,
    /// The initiator reads the mask and sends the IPIs.
    ReadMask,
    /// The initiator looks at its targets once.
    Poll,
}

/// The initiator's progress through one unmap.
#[derive(Clone, Copy, Debug)]
enum Initiator {
    Quiet,
    Changed {
        changed_at: u64,
    },
    Waiting {
        changed_at: u64,
        shootdown: Shootdown,
    },
}

struct Model {
    cpus: Vec<Cpu>,
    mask: CpuSet,
    generation: u64,
    now: u64,
    initiator: Initiator,
    completed: u64,
    /// Switch in with the generation read after the CR3 write (the wrong order, to show that
    /// the model catches it).
    read_generation_after_cr3: bool,
}

impl Model {
    fn new(cpus: usize, read_generation_after_cr3: bool) -> Self {
        let mut model = Self {
            cpus: vec![
                Cpu {
                    loaded: Loaded::Other,
                    idle: false,
                    last_flush: 0,
                    flushed_generation: 0,
                    generation_read: 0,
                    plan: Vec::new(),
                    pending: None,
                };
                cpus
            ],
            mask: CpuSet::EMPTY,
            generation: 1,
            now: 0,
            initiator: Initiator::Quiet,
            completed: 0,
            read_generation_after_cr3,
        };
        // CPU 0 runs the unmapping thread of S.
        model.cpus[0].loaded = Loaded::Target;
        model.cpus[0].flushed_generation = 1;
        model.mask = CpuSet::only(CpuIndex::FIRST);
        model
    }

    fn index(&self, cpu: u8) -> usize {
        // CPU 0 is the initiator's; the others do the switching.
        1 + usize::from(cpu) % (self.cpus.len() - 1)
    }

    fn apply(&mut self, event: &Event) -> Result<(), String> {
        self.now += 1;
        match *event {
            Event::Switch { cpu, to_target } if self.cpus.len() > 1 => {
                let index = self.index(cpu);
                if self.cpus[index].plan.is_empty() {
                    self.plan_switch(index, to_target);
                } else {
                    self.switch_step(index);
                }
            }
            Event::GoIdle { cpu } if self.cpus.len() > 1 => {
                let index = self.index(cpu);
                if self.cpus[index].plan.is_empty() {
                    self.cpus[index].idle = true;
                }
            }
            Event::Serve { cpu } if self.cpus.len() > 1 => {
                let index = self.index(cpu);
                self.serve(index);
            }
            Event::Switch { .. } | Event::GoIdle { .. } | Event::Serve { .. } => {}
            Event::Unmap => {
                if let Initiator::Quiet = self.initiator {
                    // PTE change, then the generation bump, then the local flush.
                    self.generation += 1;
                    self.cpus[0].last_flush = self.now;
                    self.cpus[0].flushed_generation = self.generation;
                    self.initiator = Initiator::Changed {
                        changed_at: self.now,
                    };
                }
            }
            Event::ReadMask => {
                if let Initiator::Changed { changed_at } = self.initiator {
                    let shootdown = Shootdown::new(self.mask, CpuIndex::FIRST, self.generation);
                    for cpu in shootdown.waiting().iter() {
                        self.cpus[cpu.get()].pending = Some(self.generation);
                    }
                    self.initiator = Initiator::Waiting {
                        changed_at,
                        shootdown,
                    };
                }
            }
            Event::Poll => self.poll()?,
        }
        self.check_mask()
    }

    fn plan_switch(&mut self, index: usize, to_target: bool) {
        let cpu = &mut self.cpus[index];
        cpu.idle = false;
        cpu.plan = match (cpu.loaded, to_target) {
            (Loaded::Target, true) => Vec::new(),
            (_, true) if self.read_generation_after_cr3 => vec![
                SwitchStep::SetBit,
                SwitchStep::WriteCr3(Loaded::Target),
                SwitchStep::ReadGeneration,
                SwitchStep::Publish,
            ],
            (_, true) => vec![
                SwitchStep::SetBit,
                SwitchStep::ReadGeneration,
                SwitchStep::WriteCr3(Loaded::Target),
                SwitchStep::Publish,
            ],
            (Loaded::Target, false) => {
                vec![SwitchStep::WriteCr3(Loaded::Other), SwitchStep::ClearBit]
            }
            (_, false) => vec![SwitchStep::WriteCr3(Loaded::Other)],
        };
        cpu.plan.reverse();
    }

    fn switch_step(&mut self, index: usize) {
        let cpu_index = CpuIndex::new(index).expect("model CPU");
        let Some(step) = self.cpus[index].plan.pop() else {
            return;
        };
        let generation = self.generation;
        let now = self.now;
        let cpu = &mut self.cpus[index];
        match step {
            SwitchStep::SetBit => self.mask.insert(cpu_index),
            SwitchStep::ReadGeneration => cpu.generation_read = generation,
            SwitchStep::WriteCr3(loaded) => {
                cpu.loaded = loaded;
                cpu.last_flush = now;
            }
            SwitchStep::Publish => {
                cpu.flushed_generation = cpu.flushed_generation.max(cpu.generation_read);
            }
            SwitchStep::ClearBit => self.mask.remove(cpu_index),
        }
    }

    fn serve(&mut self, index: usize) {
        let cpu_index = CpuIndex::new(index).expect("model CPU");
        let Some(generation) = self.cpus[index].pending.take() else {
            return;
        };
        let now = self.now;
        let cpu = &mut self.cpus[index];
        let mid_switch = !cpu.plan.is_empty();
        match respond_to_shootdown(cpu.loaded == Loaded::Target, cpu.idle && !mid_switch, 1) {
            ShootdownResponse::Nothing => {}
            ShootdownResponse::Invalidate(_) => cpu.last_flush = now,
            ShootdownResponse::Unload => {
                cpu.loaded = Loaded::Kernel;
                cpu.last_flush = now;
                self.mask.remove(cpu_index);
            }
        }
        let cpu = &mut self.cpus[index];
        cpu.flushed_generation = cpu.flushed_generation.max(generation);
    }

    fn poll(&mut self) -> Result<(), String> {
        let Initiator::Waiting {
            changed_at,
            mut shootdown,
        } = self.initiator
        else {
            return Ok(());
        };
        for cpu in shootdown.waiting().iter() {
            let view = TargetView {
                has_space_loaded: self.mask.contains(cpu),
                flushed_generation: self.cpus[cpu.get()].flushed_generation,
            };
            let _complete = shootdown.observe(cpu, view);
        }
        if !shootdown.is_complete() {
            self.initiator = Initiator::Waiting {
                changed_at,
                shootdown,
            };
            return Ok(());
        }
        for (index, cpu) in self.cpus.iter().enumerate() {
            if cpu.loaded == Loaded::Target && cpu.last_flush < changed_at {
                return Err(format!(
                    "stale: cpu {index} still has S loaded, last flushed at {} before the change at {changed_at}",
                    cpu.last_flush
                ));
            }
        }
        self.completed += 1;
        self.initiator = Initiator::Quiet;
        Ok(())
    }

    fn check_mask(&self) -> Result<(), String> {
        for (index, cpu) in self.cpus.iter().enumerate() {
            let in_mask = self.mask.contains(CpuIndex::new(index).expect("model CPU"));
            if cpu.loaded == Loaded::Target && !in_mask {
                return Err(format!(
                    "mask: cpu {index} has S loaded but is not in the mask"
                ));
            }
        }
        Ok(())
    }

    /// Let every CPU finish its switch and serve its IPI, then poll: the shootdown must end.
    fn drain(&mut self) -> Result<(), String> {
        for index in 1..self.cpus.len() {
            while !self.cpus[index].plan.is_empty() {
                self.now += 1;
                self.switch_step(index);
            }
            self.now += 1;
            self.serve(index);
        }
        self.poll()?;
        match self.initiator {
            Initiator::Waiting { shootdown, .. } => Err(format!(
                "stuck: shootdown waits for {:?} after every CPU served",
                shootdown.waiting()
            )),
            Initiator::Quiet | Initiator::Changed { .. } => Ok(()),
        }
    }
}

fn run(cpus: usize, events: &[Event], read_generation_after_cr3: bool) -> Result<u64, String> {
    let mut model = Model::new(cpus, read_generation_after_cr3);
    for (step, event) in events.iter().enumerate() {
        model
            .apply(event)
            .map_err(|error| format!("step {step} ({event:?}): {error}"))?;
    }
    model.drain()?;
    Ok(model.completed)
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (any::<u8>(), any::<bool>()).prop_map(|(cpu, to_target)| Event::Switch { cpu, to_target }),
        1 => any::<u8>().prop_map(|cpu| Event::GoIdle { cpu }),
        3 => any::<u8>().prop_map(|cpu| Event::Serve { cpu }),
        1 => Just(Event::Unmap),
        1 => Just(Event::ReadMask),
        2 => Just(Event::Poll),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn shootdown_never_frees_a_frame_a_cpu_may_still_reach(
        cpus in 1usize..=8,
        events in proptest::collection::vec(event(), 1..200),
    ) {
        if let Err(failure) = run(cpus, &events, false) {
            prop_assert!(false, "{}", failure);
        }
    }
}

#[test]
fn reading_the_generation_after_the_cr3_write_is_caught() {
    // CPU 1 writes CR3 for S, the initiator changes the PTE, CPU 1 then reads the new
    // generation and publishes it: it claims a flush it never did.
    let events = [
        Event::Switch {
            cpu: 0,
            to_target: true,
        },
        Event::Switch {
            cpu: 0,
            to_target: true,
        }, // set bit
        Event::Switch {
            cpu: 0,
            to_target: true,
        }, // write CR3
        Event::Unmap,
        Event::Switch {
            cpu: 0,
            to_target: true,
        }, // read generation
        Event::Switch {
            cpu: 0,
            to_target: true,
        }, // publish
        Event::ReadMask,
        Event::Poll,
    ];
    assert_eq!(run(2, &events, false), Ok(1));
    let failure = run(2, &events, true).unwrap_err();
    assert!(failure.contains("stale"), "{failure}");
}
