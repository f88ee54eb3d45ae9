//! Allocations per call, for every breaker and path the benches measure, counted by a
//! counting global allocator (`stats_alloc`). Prints a markdown table; exits with status 1
//! if any cutout path allocates.
//!
//! `cargo bench -p cutout-benches --bench alloc` (or `cargo test ... --benches`, which runs
//! it the same way).

use std::alloc::System;
use std::hint::black_box;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

mod support;

use support::{Work, cases};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Calls per measurement, after as many warm-up calls (thread-locals, lazy statics and
/// epoch registration happen in the warm-up).
const CALLS: u32 = 10_000;

struct Row {
    breaker: &'static str,
    path: &'static str,
    allocs: f64,
    bytes: f64,
    as_expected: bool,
}

fn count(breaker: &'static str, path: &'static str, mut f: impl FnMut() -> bool) -> Row {
    let mut as_expected = true;
    for _ in 0..CALLS {
        as_expected &= black_box(f());
    }
    let region = Region::new(GLOBAL);
    for _ in 0..CALLS {
        as_expected &= black_box(f());
    }
    let change = region.change();
    Row {
        breaker,
        path,
        allocs: change.allocations as f64 / f64::from(CALLS),
        bytes: change.bytes_allocated as f64 / f64::from(CALLS),
        as_expected,
    }
}

fn main() {
    let mut rows = Vec::new();

    // cutout
    let cb = cases::cutout_closed();
    rows.push(count("cutout", "closed success (call)", || {
        cases::cutout_call_ok(&cb)
    }));
    rows.push(count("cutout", "closed success (permit)", || {
        cases::cutout_permit_ok(&cb)
    }));
    rows.push(count("cutout", "closed failure then success", || {
        cases::cutout_fail_then_ok(&cb)
    }));
    let open = cases::cutout_open_monotonic();
    rows.push(count("cutout", "open reject (monotonic clock)", || {
        cases::cutout_reject(&open)
    }));
    let open = cases::cutout_open_manual();
    rows.push(count("cutout", "open reject (manual clock)", || {
        cases::cutout_reject(&open)
    }));
    let (half_open, _clock) = cases::cutout_half_open_manual();
    rows.push(count("cutout", "half-open probe (manual clock)", || {
        cases::cutout_probe_ignored(&half_open)
    }));
    let half_open = cases::cutout_half_open_monotonic();
    rows.push(count("cutout", "half-open probe (monotonic clock)", || {
        cases::cutout_probe_ignored(&half_open)
    }));
    let (cycle, clock) = cases::cutout_cycle();
    rows.push(count(
        "cutout",
        "trip, probe, close (3 transitions)",
        || cases::cutout_trip_probe_close(&cycle, &clock),
    ));

    // failsafe
    let cb = cases::failsafe_closed();
    rows.push(count("failsafe", "closed success", || {
        cases::failsafe_call_ok(&cb)
    }));
    rows.push(count("failsafe", "closed failure then success", || {
        cases::failsafe_fail_then_ok(&cb)
    }));
    let open = cases::failsafe_open();
    rows.push(count("failsafe", "open reject", || {
        cases::failsafe_reject(&open)
    }));

    // recloser
    let cb = cases::recloser_closed();
    rows.push(count("recloser", "closed success", || {
        cases::recloser_call_ok(&cb)
    }));
    rows.push(count("recloser", "closed failure then success", || {
        cases::recloser_fail_then_ok(&cb)
    }));
    let open = cases::recloser_open();
    rows.push(count("recloser", "open reject", || {
        cases::recloser_reject(&open)
    }));
    let half_open = cases::recloser_half_open();
    rows.push(count("recloser", "half-open probe", || {
        cases::recloser_call_ok(&half_open)
    }));

    // breaker
    let cb = cases::breaker_closed();
    rows.push(count("breaker", "closed success", || {
        cases::breaker_call_ok(&cb)
    }));
    rows.push(count("breaker", "closed failure then success", || {
        cases::breaker_fail_then_ok(&cb)
    }));
    let open = cases::breaker_open();
    rows.push(count("breaker", "open reject", || {
        cases::breaker_reject(&open)
    }));
    let half_open = cases::breaker_half_open();
    rows.push(count("breaker", "half-open probe", || {
        cases::breaker_call_ok(&half_open)
    }));

    // tower stacks
    let mut bare = Work;
    rows.push(count("tower: bare service", "closed success", || {
        cases::tower_ok(&mut bare)
    }));
    let mut tower_cutout = cases::tower_cutout_closed();
    rows.push(count("tower: tower-cutout", "closed success", || {
        cases::tower_ok(&mut tower_cutout)
    }));
    let mut tower_cutout = cases::tower_cutout_open();
    rows.push(count("tower: tower-cutout", "open reject", || {
        cases::tower_cutout_reject(&mut tower_cutout)
    }));
    let mut resilience = cases::resilience_closed();
    rows.push(count("tower: tower-resilience", "closed success", || {
        cases::tower_ok(&mut resilience)
    }));
    let mut resilience = cases::resilience_open();
    rows.push(count("tower: tower-resilience", "open reject", || {
        cases::resilience_reject(&mut resilience)
    }));

    println!("| breaker | path | allocations / call | bytes / call |");
    println!("|---|---|---:|---:|");
    let mut ok = true;
    for row in &rows {
        println!(
            "| {} | {} | {:.2} | {:.1} |",
            row.breaker, row.path, row.allocs, row.bytes
        );
        if !row.as_expected {
            eprintln!(
                "{} / {}: the breaker was not in the expected state",
                row.breaker, row.path
            );
            ok = false;
        }
        if row.breaker == "cutout" && row.allocs > 0.0 {
            eprintln!("{} / {}: allocates", row.breaker, row.path);
            ok = false;
        }
    }
    if ok {
        println!("\nalloc: {} passed, 0 failed", rows.len());
    } else {
        std::process::exit(1);
    }
}
