//! `ticketd serve` with a counting global allocator, for `scripts/bench-sockets --heap`: the
//! server's live heap (bytes requested and not yet freed) tells the socket benchmark how much of
//! the memory per socket is real allocations and how much is the allocator's own (glibc's chunk
//! headers and rounding, freed memory not given back). Not for production: every allocation
//! pays two atomic additions.
//!
//! Serves exactly as `ticketd serve` does, from the same environment. With `TICKETD_HEAP_FILE`
//! set, it writes the live heap in bytes to that file every 100 ms (to a temporary file first,
//! then renamed, so a reader never sees half a number).

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use std::alloc::System;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() -> ExitCode {
    let _ = dotenvy::dotenv();
    if let Some(path) = std::env::var_os("TICKETD_HEAP_FILE").map(PathBuf::from) {
        let partial = path.with_extension("partial");
        std::thread::spawn(move || {
            loop {
                let stats = GLOBAL.stats();
                let live = stats
                    .bytes_allocated
                    .saturating_sub(stats.bytes_deallocated);
                if std::fs::write(&partial, format!("{live}\n")).is_ok() {
                    let _ = std::fs::rename(&partial, &path);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    }
    ticketd::cli::serve()
}
