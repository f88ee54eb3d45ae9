//! `bench-report`: reads criterion's estimates from one run of the `core` and `peers`
//! benches and writes the results table (markdown, with ratios to the floors and to cutout,
//! and the targets) and a bar chart (SVG, log scale).
//!
//! ```text
//! cargo run -p cutout-benches --bin bench-report -- \
//!     [--criterion-dir DIR] [--svg FILE] [--markdown FILE]
//! ```
//!
//! `DIR` defaults to `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else
//! `target/criterion` (where criterion writes). The time of a
//! benchmark is criterion's median time per iteration (`new/estimates.json`).

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
}

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
    let by_group = group(&benches);

    let table = render_table(&by_group);
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
                out.push(read_bench(&meta, &estimates)?);
            }
        } else {
            collect(&path, out)?;
        }
    }
    Ok(())
}

fn read_bench(meta: &Path, estimates: &Path) -> Result<Bench, Error> {
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
    Ok(Bench { group, id, ns })
}

fn group(benches: &[Bench]) -> BTreeMap<String, BTreeMap<String, f64>> {
    let mut map: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for b in benches {
        map.entry(b.group.clone())
            .or_default()
            .insert(b.id.clone(), b.ns);
    }
    map
}

fn get(by_group: &BTreeMap<String, BTreeMap<String, f64>>, group: &str, id: &str) -> Option<f64> {
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

fn render_table(by_group: &BTreeMap<String, BTreeMap<String, f64>>) -> String {
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
    s.push_str(&render_targets(by_group));
    s
}

/// One target: a ratio, its limit, and whether a smaller ratio is better.
fn target_line(s: &mut String, what: &str, ratio: Option<f64>, limit: f64, at_most: bool) {
    match ratio {
        Some(r) => {
            let met = if at_most { r <= limit } else { r >= limit };
            let _ = writeln!(
                s,
                "| {what} | {r:.2} | {} {limit} | {} |",
                if at_most { "<=" } else { ">=" },
                if met { "met" } else { "**missed**" }
            );
        }
        None => {
            let _ = writeln!(s, "| {what} | - | | not measured in this run |");
        }
    }
}

fn render_targets(g: &BTreeMap<String, BTreeMap<String, f64>>) -> String {
    let mut s = String::from("\n#### Targets (ratios within this run)\n\n");
    s.push_str("| target | ratio | limit | |\n|---|---:|---:|---|\n");
    let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    target_line(
        &mut s,
        "closed success (`call`) / load + call + load floor",
        ratio(
            get(g, "core_single_thread", "closed_success/call"),
            get(g, "core_single_thread", "floor/load_call_load"),
        ),
        3.0,
        true,
    );
    target_line(
        &mut s,
        "open reject (MonotonicClock) / `Instant::now`",
        ratio(
            get(g, "core_real_clock", "open_reject/monotonic_clock"),
            get(g, "core_real_clock", "floor/instant_now"),
        ),
        1.5,
        true,
    );
    let fastest_peer = ["failsafe", "recloser", "breaker"]
        .iter()
        .filter_map(|p| get(g, "peers_closed_success", p))
        .reduce(f64::min);
    target_line(
        &mut s,
        "fastest peer's closed success / cutout's",
        ratio(fastest_peer, get(g, "peers_closed_success", "cutout")),
        5.0,
        false,
    );
    target_line(
        &mut s,
        "tower-resilience stack / tower-cutout stack (closed success)",
        ratio(
            get(g, "peers_tower_closed_success", "tower_resilience"),
            get(g, "peers_tower_closed_success", "tower_cutout"),
        ),
        20.0,
        false,
    );
    target_line(
        &mut s,
        "cutout closed success, 2 threads / 1 thread (per call)",
        ratio(
            get(g, "peers_two_threads_closed_success", "cutout/2_threads"),
            get(g, "peers_two_threads_closed_success", "cutout/1_thread"),
        ),
        1.5,
        true,
    );
    target_line(
        &mut s,
        "tower-cutout closed success, 2 threads / 1 thread (per call)",
        ratio(
            get(
                g,
                "peers_two_threads_closed_success",
                "tower_cutout/2_threads",
            ),
            get(
                g,
                "peers_two_threads_closed_success",
                "tower_cutout/1_thread",
            ),
        ),
        1.5,
        true,
    );
    s
}

/// A horizontal bar per benchmark of the `peers_*` groups, on a log scale.
fn plot(by_group: &BTreeMap<String, BTreeMap<String, f64>>, path: &Path) -> Result<(), Error> {
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
