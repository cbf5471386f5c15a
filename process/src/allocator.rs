//! glibc's `malloc` set up for a long-running service on a small board.
//!
//! By default glibc raises its mmap threshold as the program frees large blocks (up to 32 MiB on
//! 64-bit), after which every large buffer — sled's 512 KiB I/O buffers, a batch read from the
//! outbox — comes from the heap, and the freed heap is only given back when its top is free. An
//! edge that drained a 300,000-event backlog stayed at 94 MiB resident while its live heap was
//! about 55 MiB (heaptrack); with fixed thresholds of 128 KiB ([`tune`]) it stayed at 72–79 MiB,
//! and the hub at full load peaked at 126–146 MiB instead of 237 MiB. Holes inside the heap (a
//! large block freed between small ones still in use) go back only through `malloc_trim`, which
//! [`trim_every`] calls on a thread of its own: with it, the edge holding that backlog dropped
//! from 75 to 53 MiB (`outpost-sim bench peers`, `docs/benchmarks.md`). Every process
//! `outpost_process::run_main` starts does both, the trim every 2 s.
//!
//! Invariant: what an operator sets in the environment (`MALLOC_MMAP_THRESHOLD_`,
//! `MALLOC_TRIM_THRESHOLD_`, glibc's own variables) wins; nothing here changes behaviour, only
//! when memory goes back to the system.

/// Blocks from this size on are mapped on their own and unmapped when freed; free memory above
/// this at the top of the heap is returned.
pub const THRESHOLD_BYTES: i32 = 128 * 1024;

/// Fixes glibc's mmap and trim thresholds at [`THRESHOLD_BYTES`], unless the environment sets
/// them. Call first in `main`, before threads start. Does nothing on other C libraries.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        for (variable, parameter) in [
            ("MALLOC_MMAP_THRESHOLD_", libc::M_MMAP_THRESHOLD),
            ("MALLOC_TRIM_THRESHOLD_", libc::M_TRIM_THRESHOLD),
        ] {
            if std::env::var_os(variable).is_none() {
                set(parameter, THRESHOLD_BYTES);
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set(parameter: libc::c_int, value: libc::c_int) {
    // SAFETY: `mallopt` takes two integers, touches only the allocator's own settings, and is
    // safe to call at any time; it answers 0 for a parameter or value it does not take.
    let accepted = unsafe { libc::mallopt(parameter, value) };
    if accepted == 0 {
        eprintln!("warning: glibc refused mallopt({parameter}, {value})");
    }
}

/// Every `period`, hands free memory inside the heap back to the system (`malloc_trim`), on a
/// thread of its own. Does nothing on other C libraries.
pub fn trim_every(period: std::time::Duration) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let spawned = std::thread::Builder::new()
            .name("malloc-trim".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(period);
                    trim();
                }
            });
        if let Err(err) = spawned {
            eprintln!("warning: cannot start the malloc-trim thread: {err}");
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() {
    // SAFETY: `malloc_trim` takes an integer and only returns free pages to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}
