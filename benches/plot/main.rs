//! `bench-report`: reads criterion's estimates from one run of the `core`, `peers` and
//! `windows` benches and writes the results table (markdown, with ratios to the floors and
//! to cutout, and the targets) and a bar chart (SVG, log scale).
//!
//! ```text
//! cargo run -p cutout-benches --bin bench-report -- \
//!     [--criterion-dir DIR] [--svg FILE] [--markdown FILE]
//! ```
//!
//! `DIR` defaults to `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else
//! `target/criterion` (where criterion writes). The time of a
//! benchmark is criterion's median time per iteration (`new/estimates.json`). The targets
//! also give each ratio over the fastest tenth of the samples (`new/sample.json`: the
//! 10th percentile of the time per iteration of criterion's 100 samples): other tenants of
//! a shared machine only ever add time, and the median of a row moves with whatever else
//! ran while it was measured, so a ratio of two medians measured a minute apart carries
//! that noise; the fastest tenth of each row carries much less of it.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

type Error = Box<dyn std::error::Error>;

/// One benchmark's result.
#[derive(Debug, Clone)]
struct Bench {
    group: String,
    /// The id within the group: `function` or `function/parameter`.
    id: String,
    /// Median time per iteration, in nanoseconds.
    ns: f64,
    /// The 10th percentile of the samples' time per iteration, in nanoseconds (the median
    /// if criterion left no samples).
    fast_ns: f64,
}

/// Nanoseconds per iteration by group, then by id.
type Times = BTreeMap<String, BTreeMap<String, f64>>;

/// How a group's rows are compared.
struct GroupSpec {
    group: &'static str,
    title: &'static str,
    /// The floor every row is divided by (an id in the group).
    floor: Option<&'static str>,
    /// The cutout row others are compared with.
    cutout: Option<&'static str>,
    /// Rows are `name/1_thread` and `name/2_threads`: show 2 threads / 1 thread.
    threads: bool,
    /// Calls per iteration (a failure then a success is two).
    calls: f64,
}

const GROUPS: &[GroupSpec] = &[
    GroupSpec {
        group: "core_single_thread",
        title: "cutout, one thread (ManualClock where time matters)",
        floor: Some("floor/load_call_load"),
        cutout: None,
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "core_real_clock",
        title: "cutout on the real clock",
        floor: Some("floor/instant_now"),
        cutout: None,
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "core_two_threads",
        title: "cutout, one shared breaker, 1 and 2 threads",
        floor: None,
        cutout: None,
        threads: true,
        calls: 1.0,
    },
    GroupSpec {
        group: "windows_single_thread",
        title: "rate windows and keyed breakers, one thread",
        floor: Some("floor/fetch_add"),
        cutout: None,
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "windows_two_threads",
        title: "rate windows and keyed breakers, one shared breaker or registry, 1 and 2 threads",
        floor: None,
        cutout: None,
        threads: true,
        calls: 1.0,
    },
    GroupSpec {
        group: "peers_closed_success",
        title: "closed, success",
        floor: Some("floor_load_call_load"),
        cutout: Some("cutout"),
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "peers_closed_fail_then_success",
        title: "closed, a failure then a success (two calls per iteration)",
        floor: None,
        cutout: Some("cutout"),
        threads: false,
        calls: 2.0,
    },
    GroupSpec {
        group: "peers_open_reject",
        title: "open, reject",
        floor: Some("floor_instant_now"),
        cutout: Some("cutout"),
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "peers_half_open_probe",
        title: "half-open, a probe that leaves it half-open",
        floor: Some("floor_instant_now"),
        cutout: Some("cutout"),
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "peers_tower_closed_success",
        title: "tower stack, closed, success",
        floor: Some("bare_service"),
        cutout: Some("tower_cutout"),
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "peers_tower_open_reject",
        title: "tower stack, open, reject",
        floor: None,
        cutout: Some("tower_cutout"),
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "tower_floor_closed_success",
        title: "tower, closed success: the hand-written floor layers beside tower-cutout on each handle",
        floor: Some("floor_static"),
        cutout: None,
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "tower_floor_open_reject",
        title: "tower, forced open: the core's rejection beside the layer's",
        floor: Some("core"),
        cutout: None,
        threads: false,
        calls: 1.0,
    },
    GroupSpec {
        group: "tower_floor_two_threads",
        title: "tower, closed success, one shared breaker, 1 and 2 threads",
        floor: None,
        cutout: None,
        threads: true,
        calls: 1.0,
    },
    GroupSpec {
        group: "peers_two_threads_closed_success",
        title: "closed, success, one shared breaker, 1 and 2 threads",
        floor: None,
        cutout: Some("cutout"),
        threads: true,
        calls: 1.0,
    },
];

fn main() -> Result<(), Error> {
    // Where criterion wrote: the same rule criterion follows.
    let mut dir = std::env::var_os("CRITERION_HOME")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|d| PathBuf::from(d).join("criterion"))
        })
        .unwrap_or_else(|| PathBuf::from("target/criterion"));
    let mut svg: Option<PathBuf> = None;
    let mut markdown: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--criterion-dir" => dir = PathBuf::from(value()?),
            "--svg" => svg = Some(PathBuf::from(value()?)),
            "--markdown" => markdown = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown argument {arg}").into()),
        }
    }

    let mut benches = Vec::new();
    collect(&dir, &mut benches)?;
    if benches.is_empty() {
        return Err(format!("no criterion results under {}", dir.display()).into());
    }
    let by_group = group(&benches, |b| b.ns);
    let fastest_tenth = group(&benches, |b| b.fast_ns);

    let table = render_table(&by_group, &fastest_tenth);
    print!("{table}");
    if let Some(path) = markdown {
        std::fs::write(&path, &table)?;
        eprintln!("wrote {}", path.display());
    }
    if let Some(path) = svg {
        plot(&by_group, &path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// Finds every `new/benchmark.json` under `dir` and reads its estimates.
fn collect(dir: &Path, out: &mut Vec<Bench>) -> Result<(), Error> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let meta = path.join("benchmark.json");
            let estimates = path.join("estimates.json");
            if meta.exists() && estimates.exists() {
                out.push(read_bench(&meta, &estimates, &path.join("sample.json"))?);
            }
        } else {
            collect(&path, out)?;
        }
    }
    Ok(())
}

fn read_bench(meta: &Path, estimates: &Path, samples: &Path) -> Result<Bench, Error> {
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(meta)?)?;
    let est: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(estimates)?)?;
    let group = meta["group_id"].as_str().unwrap_or_default().to_owned();
    let mut id = meta["function_id"].as_str().unwrap_or_default().to_owned();
    if let Some(value) = meta["value_str"].as_str() {
        id = format!("{id}/{value}");
    }
    let ns = est["median"]["point_estimate"]
        .as_f64()
        .ok_or("estimates.json without a median")?;
    let fast_ns = if samples.exists() {
        let samples: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(samples)?)?;
        fastest_tenth(&samples).ok_or("sample.json without times and iteration counts")?
    } else {
        ns
    };
    Ok(Bench {
        group,
        id,
        ns,
        fast_ns,
    })
}

/// The 10th percentile (nearest rank) of the time per iteration over criterion's samples
/// (`{"iters": [..], "times": [..]}`, nanoseconds per sample).
fn fastest_tenth(samples: &serde_json::Value) -> Option<f64> {
    let iters = samples["iters"].as_array()?;
    let times = samples["times"].as_array()?;
    let mut per_iteration = iters
        .iter()
        .zip(times)
        .map(|(i, t)| Some(t.as_f64()? / i.as_f64()?))
        .collect::<Option<Vec<f64>>>()?;
    per_iteration.retain(|t| t.is_finite());
    per_iteration.sort_by(f64::total_cmp);
    per_iteration
        .get(per_iteration.len().div_ceil(10).saturating_sub(1))
        .copied()
}

fn group(benches: &[Bench], time: impl Fn(&Bench) -> f64) -> Times {
    let mut map = Times::new();
    for b in benches {
        map.entry(b.group.clone())
            .or_default()
            .insert(b.id.clone(), time(b));
    }
    map
}

fn get(by_group: &Times, group: &str, id: &str) -> Option<f64> {
    by_group.get(group)?.get(id).copied()
}

/// The rows of a group in the order they were benchmarked (floors first, then cutout,
/// then the rest by name).
fn ordered(rows: &BTreeMap<String, f64>) -> Vec<(&String, f64)> {
    let mut v: Vec<_> = rows.iter().map(|(k, v)| (k, *v)).collect();
    let rank = |id: &str| {
        if id.starts_with("floor") || id.starts_with("bare") || id.starts_with("tower_bare") {
            0
        } else if id.starts_with("cutout") || id.starts_with("tower_cutout") {
            1
        } else if id.contains('/') && !id.starts_with("floor") {
            // core ids: path/variant, in path order.
            2
        } else {
            3
        }
    };
    v.sort_by(|a, b| rank(a.0).cmp(&rank(b.0)).then(a.0.cmp(b.0)));
    v
}

fn render_table(by_group: &Times, fastest_tenth: &Times) -> String {
    let mut s = String::new();
    for spec in GROUPS {
        let Some(rows) = by_group.get(spec.group) else {
            continue;
        };
        let _ = writeln!(s, "\n#### `{}`: {}\n", spec.group, spec.title);
        if spec.threads {
            let _ = writeln!(
                s,
                "| benchmark | 1 thread, ns/call | 2 threads, ns/call | 2 threads / 1 thread |{}",
                if spec.cutout.is_some() {
                    " 2 threads, x cutout |"
                } else {
                    ""
                }
            );
            let _ = writeln!(
                s,
                "|---|---:|---:|---:|{}",
                if spec.cutout.is_some() { "---:|" } else { "" }
            );
            let mut names: Vec<&str> = rows
                .keys()
                .filter_map(|k| k.strip_suffix("/1_thread"))
                .collect();
            names.sort_by_key(|n| (!n.starts_with("floor"), !n.starts_with("cutout"), *n));
            let cutout2 = spec
                .cutout
                .and_then(|c| rows.get(&format!("{c}/2_threads")).copied());
            for name in names {
                let one = rows.get(&format!("{name}/1_thread")).copied();
                let two = rows.get(&format!("{name}/2_threads")).copied();
                let (Some(one), Some(two)) = (one, two) else {
                    continue;
                };
                let _ = write!(s, "| {name} | {one:.1} | {two:.1} | {:.2} |", two / one);
                if spec.cutout.is_some() {
                    match cutout2 {
                        Some(c) if !name.starts_with("floor") => {
                            let _ = write!(s, " {:.1} |", two / c);
                        }
                        _ => s.push_str(" |"),
                    }
                }
                s.push('\n');
            }
            continue;
        }
        let floor = spec.floor.and_then(|f| rows.get(f).copied());
        let cutout = spec.cutout.and_then(|c| rows.get(c).copied());
        let per_call = if spec.calls == 1.0 {
            "ns/call".to_owned()
        } else {
            format!("ns/iteration ({} calls)", spec.calls)
        };
        let _ = writeln!(
            s,
            "| benchmark | {per_call} |{}{}",
            match spec.floor {
                Some(f) => format!(" x `{f}` |"),
                None => String::new(),
            },
            if spec.cutout.is_some() {
                " x cutout |"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "|---|---:|{}{}",
            if spec.floor.is_some() { "---:|" } else { "" },
            if spec.cutout.is_some() { "---:|" } else { "" }
        );
        for (id, ns) in ordered(rows) {
            let _ = write!(s, "| {id} | {ns:.1} |");
            if spec.floor.is_some() {
                match floor {
                    Some(f) => {
                        let _ = write!(s, " {:.2} |", ns / f);
                    }
                    None => s.push_str(" |"),
                }
            }
            if spec.cutout.is_some() {
                match cutout {
                    Some(c) if !id.starts_with("floor") && !id.starts_with("bare") => {
                        let _ = write!(s, " {:.1} |", ns / c);
                    }
                    _ => s.push_str(" |"),
                }
            }
            s.push('\n');
        }
    }
    s.push_str(&render_targets(by_group, fastest_tenth));
    s
}

/// A target: what it compares, the ratio from one run's times, its limit, and whether a
/// smaller ratio is better.
struct Target {
    what: &'static str,
    ratio: Ratio,
    limit: f64,
    at_most: bool,
}

/// How a target's ratio is taken from one run's times.
enum Ratio {
    /// Row `num` over row `den` of `group`.
    Rows(&'static str, &'static str, &'static str),
    /// What a window (a row of `windows_single_thread`) adds to a closed success, over a
    /// `fetch_add`.
    WindowAdded(&'static str),
    /// The fastest peer's closed success over cutout's.
    FastestPeer,
    /// A cutout row of a `peers_*` group over the fastest peer's (failsafe, recloser,
    /// breaker) in that group.
    OverFastestPeer(&'static str, &'static str),
    /// What row `num` adds over row `base`, over what row `den` adds over it (all in one
    /// group): a layer's cost beside a floor layer's.
    Added {
        group: &'static str,
        num: &'static str,
        den: &'static str,
        base: &'static str,
    },
    /// Row `num` over the sum of rows `a` and `b` (one group).
    OverSum(&'static str, &'static str, &'static str, &'static str),
}

impl Ratio {
    fn of(&self, g: &Times) -> Option<f64> {
        match *self {
            Ratio::Rows(group, num, den) => ratio(get(g, group, num), get(g, group, den)),
            Ratio::WindowAdded(window) => window_added(g, window),
            Ratio::FastestPeer => {
                let fastest_peer = ["failsafe", "recloser", "breaker"]
                    .iter()
                    .filter_map(|p| get(g, "peers_closed_success", p))
                    .reduce(f64::min);
                ratio(fastest_peer, get(g, "peers_closed_success", "cutout"))
            }
            Ratio::OverFastestPeer(group, row) => {
                let fastest_peer = ["failsafe", "recloser", "breaker"]
                    .iter()
                    .filter_map(|p| get(g, group, p))
                    .reduce(f64::min);
                ratio(get(g, group, row), fastest_peer)
            }
            Ratio::Added {
                group,
                num,
                den,
                base,
            } => {
                let base = get(g, group, base)?;
                ratio(
                    Some(get(g, group, num)? - base),
                    Some(get(g, group, den)? - base),
                )
            }
            Ratio::OverSum(group, num, a, b) => ratio(
                get(g, group, num),
                Some(get(g, group, a)? + get(g, group, b)?),
            ),
        }
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// What a window adds to a closed success, over a `fetch_add`.
fn window_added(g: &Times, window: &str) -> Option<f64> {
    let group = "windows_single_thread";
    let added = get(g, group, window)? - get(g, group, "closed_success/no_window")?;
    ratio(Some(added), get(g, group, "floor/fetch_add"))
}

const CORE: &str = "core_single_thread";
const TWO_THREADS: &str = "peers_two_threads_closed_success";

const TARGETS: &[Target] = &[
    Target {
        what: "closed success (`call`) / load + call + load floor",
        ratio: Ratio::Rows(CORE, "closed_success/call", "floor/load_call_load"),
        limit: 3.0,
        at_most: true,
    },
    Target {
        what: "closed success (permit) / load + call + load floor",
        ratio: Ratio::Rows(CORE, "closed_success/permit", "floor/load_call_load"),
        limit: 3.0,
        at_most: true,
    },
    Target {
        what: "open reject (MonotonicClock) / `Instant::now`",
        ratio: Ratio::Rows(
            "core_real_clock",
            "open_reject/monotonic_clock",
            "floor/instant_now",
        ),
        limit: 1.5,
        at_most: true,
    },
    Target {
        what: "fastest peer's closed success / cutout's",
        ratio: Ratio::FastestPeer,
        limit: 5.0,
        at_most: false,
    },
    Target {
        what: "tower-resilience stack / tower-cutout stack (closed success)",
        ratio: Ratio::Rows(
            "peers_tower_closed_success",
            "tower_resilience",
            "tower_cutout",
        ),
        limit: 20.0,
        at_most: false,
    },
    Target {
        what: "cutout closed success, 2 threads / 1 thread (per call)",
        ratio: Ratio::Rows(TWO_THREADS, "cutout/2_threads", "cutout/1_thread"),
        limit: 1.5,
        at_most: true,
    },
    Target {
        what: "tower-cutout closed success, 2 threads / 1 thread (per call)",
        ratio: Ratio::Rows(
            TWO_THREADS,
            "tower_cutout/2_threads",
            "tower_cutout/1_thread",
        ),
        limit: 1.5,
        at_most: true,
    },
    Target {
        what: "what a count window of 100 adds to a closed success / `fetch_add`",
        ratio: Ratio::WindowAdded("closed_success/count_window_100"),
        limit: 2.0,
        at_most: true,
    },
    Target {
        what: "what a time window (ManualClock) adds to a closed success / `fetch_add`",
        ratio: Ratio::WindowAdded("closed_success/time_window_10x1s_manual_clock"),
        limit: 2.0,
        at_most: true,
    },
];

const TOWER: &str = "tower_floor_closed_success";
const TOWER_TWO: &str = "tower_floor_two_threads";

/// Issue 15's targets (the tower path at the floor, and the outage paths).
const FLOOR_TARGETS: &[Target] = &[
    Target {
        what: "tower-cutout (`&'static` breaker) closed success, added over bare / what the `&'static` floor layer adds",
        ratio: Ratio::Added {
            group: TOWER,
            num: "cutout_static",
            den: "floor_static",
            base: "bare",
        },
        limit: 1.3,
        at_most: true,
    },
    Target {
        what: "tower-cutout (owned breaker) closed success, added over bare / what the `&'static` floor layer adds",
        ratio: Ratio::Added {
            group: TOWER,
            num: "cutout",
            den: "floor_static",
            base: "bare",
        },
        limit: 1.3,
        at_most: true,
    },
    Target {
        what: "tower-cutout (`&'static`), 2 threads / 1 thread (per request)",
        ratio: Ratio::Rows(
            TOWER_TWO,
            "cutout_static/2_threads",
            "cutout_static/1_thread",
        ),
        limit: 1.2,
        at_most: true,
    },
    Target {
        what: "keyed layer (1 000 keys), 2 threads / 1 thread (per request)",
        ratio: Ratio::Rows(
            TOWER_TWO,
            "cutout_keyed_1000_keys/2_threads",
            "cutout_keyed_1000_keys/1_thread",
        ),
        limit: 1.2,
        at_most: true,
    },
    Target {
        what: "keyed layer on a `&'static` registry (1 000 keys), 2 threads / 1 thread (per request)",
        ratio: Ratio::Rows(
            TOWER_TWO,
            "cutout_keyed_static_1000_keys/2_threads",
            "cutout_keyed_static_1000_keys/1_thread",
        ),
        limit: 1.2,
        at_most: true,
    },
    Target {
        what: "tower-cutout open reject (boxed error) / core's reject + bare",
        ratio: Ratio::OverSum("tower_floor_open_reject", "cutout_static", "core", "bare"),
        limit: 1.5,
        at_most: true,
    },
    Target {
        what: "tower-cutout open reject (typed error, no allocation) / core's reject + bare",
        ratio: Ratio::OverSum(
            "tower_floor_open_reject",
            "cutout_static_typed_error",
            "core",
            "bare",
        ),
        limit: 1.5,
        at_most: true,
    },
    Target {
        what: "floor: a hand-written rejecting layer (typed error) / core's reject + bare (the least any layer does)",
        ratio: Ratio::OverSum(
            "tower_floor_open_reject",
            "floor_static_typed_error",
            "core",
            "bare",
        ),
        limit: 1.5,
        at_most: true,
    },
    Target {
        what: "tower-cutout open reject (typed error) / the hand-written rejecting floor layer",
        ratio: Ratio::Rows(
            "tower_floor_open_reject",
            "cutout_static_typed_error",
            "floor_static_typed_error",
        ),
        limit: 1.5,
        at_most: true,
    },
    Target {
        what: "keyed layer closed success (1 000 keys) / the unkeyed layer's (owned handle)",
        ratio: Ratio::Rows(TOWER, "cutout_keyed_1000_keys", "cutout"),
        limit: 3.0,
        at_most: true,
    },
    Target {
        what: "keyed layer on a `&'static` registry (1 000 keys) / the unkeyed layer on a `&'static` breaker",
        ratio: Ratio::Rows(TOWER, "cutout_keyed_static_1000_keys", "cutout_static"),
        limit: 3.0,
        at_most: true,
    },
    Target {
        what: "closed failure under the threshold (then a success) / fastest peer's",
        ratio: Ratio::OverFastestPeer("peers_closed_fail_then_success", "cutout"),
        limit: 0.5,
        at_most: true,
    },
    Target {
        what: "half-open probe (stays half-open) / fastest peer's",
        ratio: Ratio::OverFastestPeer("peers_half_open_probe", "cutout"),
        limit: 1.0,
        at_most: true,
    },
    Target {
        what: "half-open probe on `TickingClock` (stays half-open) / fastest peer's",
        ratio: Ratio::OverFastestPeer("peers_half_open_probe", "cutout_ticking_clock"),
        limit: 1.0,
        at_most: true,
    },
    Target {
        what: "open reject on the default `MonotonicClock` (coarse deadlines) / `Instant::now`",
        ratio: Ratio::Rows(
            "core_real_clock",
            "open_reject/monotonic_clock",
            "floor/instant_now",
        ),
        limit: 0.3,
        at_most: true,
    },
    Target {
        what: "open reject on `CoarseMonotonicClock` / `Instant::now`",
        ratio: Ratio::Rows(
            "core_real_clock",
            "open_reject/coarse_monotonic_clock",
            "floor/instant_now",
        ),
        limit: 0.3,
        at_most: true,
    },
    Target {
        what: "open reject on `TickingClock` / `Instant::now`",
        ratio: Ratio::Rows(
            "core_real_clock",
            "open_reject/ticking_clock",
            "floor/instant_now",
        ),
        limit: 0.3,
        at_most: true,
    },
];

fn render_targets(medians: &Times, fastest_tenth: &Times) -> String {
    let mut s = String::from("\n#### Targets (ratios within this run)\n\n");
    s.push_str(
        "| target | ratio of medians | ratio of fastest tenths | limit | |\n\
         |---|---:|---:|---:|---|\n",
    );
    let shown = |r: Option<f64>| r.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}"));
    for t in TARGETS.iter().chain(FLOOR_TARGETS) {
        let (median, fast) = (t.ratio.of(medians), t.ratio.of(fastest_tenth));
        let met = |r: Option<f64>| {
            r.map(|r| {
                if t.at_most {
                    r <= t.limit
                } else {
                    r >= t.limit
                }
            })
        };
        let verdict = match (met(median), met(fast)) {
            (None, _) | (_, None) => "not measured in this run",
            (Some(true), Some(true)) => "met",
            (Some(false), Some(true)) => "met by the fastest tenths only",
            (Some(true), Some(false)) => "met by the medians only",
            (Some(false), Some(false)) => "**missed**",
        };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} {} | {verdict} |",
            t.what,
            shown(median),
            shown(fast),
            if t.at_most { "<=" } else { ">=" },
            t.limit,
        );
    }
    s
}

/// A horizontal bar per benchmark of the `peers_*` groups, on a log scale.
fn plot(by_group: &Times, path: &Path) -> Result<(), Error> {
    let mut rows: Vec<(String, f64)> = Vec::new();
    for spec in GROUPS.iter().filter(|s| s.group.starts_with("peers_")) {
        let Some(group) = by_group.get(spec.group) else {
            continue;
        };
        let short = spec.group.trim_start_matches("peers_");
        for (id, ns) in ordered(group) {
            rows.push((format!("{short}: {id}"), ns / spec.calls));
        }
    }
    if rows.is_empty() {
        return Err("no peers_* results to plot".into());
    }
    let n = rows.len();
    let height = 120 + 22 * n as u32;
    let root = SVGBackend::new(path, (1100, height)).into_drawing_area();
    draw(&root, &rows)?;
    root.present()?;
    Ok(())
}

fn draw(root: &DrawingArea<SVGBackend<'_>, Shift>, rows: &[(String, f64)]) -> Result<(), Error> {
    root.fill(&WHITE)?;
    let n = rows.len();
    let max = rows.iter().map(|r| r.1).fold(1.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(root)
        .caption(
            "ns per call (log scale; median of one criterion run)",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(420)
        // An integer range's end is a key point too: `0..n - 1` is `n` segments.
        .build_cartesian_2d(
            (0.5f64..max).log_scale(),
            (0..n.saturating_sub(1)).into_segmented(),
        )?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) if *i < n => {
                rows[n - 1 - *i].0.clone()
            }
            SegmentValue::CenterOf(_) | SegmentValue::Exact(_) => String::new(),
            SegmentValue::Last => String::new(),
        })
        .x_desc("ns per call")
        .draw()?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (label, ns))| {
        let y = n - 1 - i;
        let color = if label.contains("floor") || label.contains("bare") {
            RGBColor(150, 150, 150)
        } else if label.contains("cutout") {
            RGBColor(30, 140, 60)
        } else {
            RGBColor(200, 90, 40)
        };
        let mut bar = Rectangle::new(
            [
                (0.5, SegmentValue::Exact(y)),
                (*ns, SegmentValue::Exact(y + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    chart.draw_series(rows.iter().enumerate().map(|(i, (_, ns))| {
        let y = n - 1 - i;
        Text::new(
            format!("{ns:.1}"),
            (*ns * 1.05, SegmentValue::CenterOf(y)),
            ("sans-serif", 12),
        )
    }))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fastest_tenth_is_the_10th_percentile_of_the_time_per_iteration() {
        // 20 samples of 10 iterations each (1..=20 ns per iteration, shuffled): the
        // nearest rank of the 10th percentile is the 2nd fastest.
        let times: Vec<f64> = [
            7, 3, 20, 1, 12, 2, 9, 15, 4, 18, 5, 11, 6, 19, 8, 13, 10, 14, 16, 17,
        ]
        .iter()
        .map(|ns| f64::from(*ns) * 10.0)
        .collect();
        let samples = serde_json::json!({ "iters": vec![10.0; 20], "times": times });
        assert_eq!(fastest_tenth(&samples), Some(2.0));
        // One sample is its own tenth; none, or a malformed file, gives none.
        let one = serde_json::json!({ "iters": [4.0], "times": [10.0] });
        assert_eq!(fastest_tenth(&one), Some(2.5));
        let empty = serde_json::json!({ "iters": [], "times": [] });
        assert_eq!(fastest_tenth(&empty), None);
        assert_eq!(fastest_tenth(&serde_json::json!({ "iters": [1.0] })), None);
    }

    #[test]
    fn a_window_target_is_what_the_window_adds_over_a_fetch_add() {
        let mut g = Times::new();
        let rows = g.entry("windows_single_thread".to_owned()).or_default();
        rows.insert("floor/fetch_add".to_owned(), 2.5);
        rows.insert("closed_success/no_window".to_owned(), 5.0);
        rows.insert("closed_success/count_window_100".to_owned(), 7.5);
        assert_eq!(
            window_added(&g, "closed_success/count_window_100"),
            Some(1.0)
        );
        assert_eq!(
            window_added(&g, "closed_success/time_window_10x1s_manual_clock"),
            None
        );
    }
}
