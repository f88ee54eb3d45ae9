//! The drill's results: the before/after table and the SVG timeline.

use std::fmt::Write as _;
use std::time::Duration;

use cutout::State;
use plotters::prelude::*;

use crate::drill::RunReport;
use crate::load::Answer;
use crate::payment::Phase;

/// The numbers of one run that the table shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Orders sent.
    pub sent: u64,
    /// Requests the payment service received during its outage.
    pub calls_during_outage: u64,
    /// Orders sent during the outage.
    pub sent_during_outage: u64,
    /// Order latency during the outage: median.
    pub p50: Duration,
    /// Order latency during the outage: 99th percentile.
    pub p99: Duration,
    /// Order latency during the outage: the slowest.
    pub max: Duration,
    /// From the end of the outage to the breaker's next close; `None` without a breaker
    /// or if it never closed.
    pub recovery_to_closed: Option<Duration>,
    /// Orders answered `completed`.
    pub completed: u64,
    /// Orders answered `pending` and paid later by the worker.
    pub queued_then_completed: u64,
    /// Orders answered with an error (or not at all).
    pub failed: u64,
    /// Failed orders whose card was charged anyway (the payment came through after the
    /// caller gave up).
    pub failed_but_charged: u64,
    /// Orders answered `pending` and never paid.
    pub lost: u64,
    /// Orders charged more than once.
    pub paid_twice: u64,
    /// The most connections the payment service held open at once.
    pub peak_connections: u64,
    /// The most requests the payment service worked on at once.
    pub peak_in_progress: u64,
    /// Times the breaker tripped or re-opened.
    pub trips: u64,
}

/// The value at quantile `q` (nearest rank) of sorted `values`; zero when empty.
///
/// ```
/// use outage_drill::report::percentile;
/// use std::time::Duration;
///
/// let ms: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
/// assert_eq!(percentile(&ms, 0.50), Duration::from_millis(50));
/// assert_eq!(percentile(&ms, 0.99), Duration::from_millis(99));
/// assert_eq!(percentile(&[], 0.99), Duration::ZERO);
/// ```
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

impl Summary {
    /// Counts a run.
    pub fn of(run: &RunReport) -> Summary {
        let plan = run.config.fault_plan();
        let mut outage_latencies: Vec<Duration> = run
            .records
            .iter()
            .filter(|r| plan.phase(r.sent_at) == Phase::Outage)
            .map(|r| r.latency)
            .collect();
        outage_latencies.sort();
        let mut s = Summary {
            sent: run.records.len() as u64,
            calls_during_outage: run.payment.requests_during_outage,
            sent_during_outage: outage_latencies.len() as u64,
            p50: percentile(&outage_latencies, 0.50),
            p99: percentile(&outage_latencies, 0.99),
            max: outage_latencies.last().copied().unwrap_or_default(),
            recovery_to_closed: None,
            completed: 0,
            queued_then_completed: 0,
            failed: 0,
            failed_but_charged: 0,
            lost: 0,
            paid_twice: run.charges.values().filter(|&&n| n > 1).count() as u64,
            peak_connections: run.peak_connections,
            peak_in_progress: run.payment.peak_in_progress,
            trips: run
                .changes
                .iter()
                .filter(|(_, to)| *to == State::Open)
                .count() as u64,
        };
        for r in &run.records {
            match &r.answer {
                Answer::Completed => s.completed += 1,
                Answer::Pending(_) if run.completions.contains_key(&r.order_id) => {
                    s.queued_then_completed += 1
                }
                Answer::Pending(_) => s.lost += 1,
                Answer::Failed(_) => {
                    s.failed += 1;
                    if run.charges.get(&r.order_id).is_some_and(|&n| n > 0) {
                        s.failed_but_charged += 1;
                    }
                }
            }
        }
        if !run.changes.is_empty() {
            let end = plan.outage_end();
            let state_at_end = run
                .changes
                .iter()
                .take_while(|(at, _)| *at <= end)
                .last()
                .map_or(State::Closed, |(_, to)| *to);
            s.recovery_to_closed = if state_at_end == State::Closed {
                Some(Duration::ZERO)
            } else {
                run.changes
                    .iter()
                    .find(|(at, to)| *at > end && *to == State::Closed)
                    .map(|(at, _)| at.saturating_sub(end))
            };
        }
        s
    }
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// The before/after table, as printed by the drill.
pub fn table(without: &RunReport, with: &RunReport) -> String {
    let a = Summary::of(without);
    let b = Summary::of(with);
    let c = &with.config;
    let mut rows: Vec<(String, String, String)> = vec![
        ("orders sent".into(), a.sent.to_string(), b.sent.to_string()),
        (
            "  of which during the outage".into(),
            a.sent_during_outage.to_string(),
            b.sent_during_outage.to_string(),
        ),
        (
            "calls that reached the failing payment service".into(),
            a.calls_during_outage.to_string(),
            b.calls_during_outage.to_string(),
        ),
        (
            "order latency during the outage, p50".into(),
            ms(a.p50),
            ms(b.p50),
        ),
        (
            "order latency during the outage, p99".into(),
            ms(a.p99),
            ms(b.p99),
        ),
        (
            "order latency during the outage, max".into(),
            ms(a.max),
            ms(b.max),
        ),
        (
            "payment recovered -> circuit closed".into(),
            "no breaker".into(),
            b.recovery_to_closed
                .map_or("never".into(), |d| format!("{:.2} s", d.as_secs_f64())),
        ),
        (
            "orders completed at once".into(),
            a.completed.to_string(),
            b.completed.to_string(),
        ),
        (
            "orders queued, then completed".into(),
            a.queued_then_completed.to_string(),
            b.queued_then_completed.to_string(),
        ),
        (
            "orders failed (customer got an error)".into(),
            a.failed.to_string(),
            b.failed.to_string(),
        ),
        (
            "  of which the card was charged anyway".into(),
            a.failed_but_charged.to_string(),
            b.failed_but_charged.to_string(),
        ),
        (
            "orders lost (accepted, never paid)".into(),
            a.lost.to_string(),
            b.lost.to_string(),
        ),
        (
            "orders paid twice".into(),
            a.paid_twice.to_string(),
            b.paid_twice.to_string(),
        ),
        (
            "peak connections held open to payment".into(),
            a.peak_connections.to_string(),
            b.peak_connections.to_string(),
        ),
        (
            "breaker trips (incl. re-opens)".into(),
            "-".into(),
            b.trips.to_string(),
        ),
    ];
    rows.insert(
        0,
        (
            String::new(),
            "without breaker".into(),
            "with breaker".into(),
        ),
    );
    let w0 = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    let w1 = rows.iter().map(|r| r.1.len()).max().unwrap_or(0);
    let w2 = rows.iter().map(|r| r.2.len()).max().unwrap_or(0);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} orders/s for {:?}; payment outage from {:?} to {:?} (seed {}); payment timeout {:?}",
        c.rate,
        c.duration,
        c.outage_start,
        c.fault_plan().outage_end(),
        c.seed,
        c.timeout,
    );
    let _ = writeln!(out);
    for (i, (k, x, y)) in rows.iter().enumerate() {
        let _ = writeln!(out, "| {k:<w0$} | {x:>w1$} | {y:>w2$} |");
        if i == 0 {
            let _ = writeln!(
                out,
                "|{}|{}:|{}:|",
                "-".repeat(w0 + 2),
                "-".repeat(w1 + 1),
                "-".repeat(w2 + 1)
            );
        }
    }
    out
}

/// Per-second counts of one run, by send time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// Orders answered `completed`, per second.
    pub completed: Vec<u64>,
    /// Orders answered `pending`, per second.
    pub pending: Vec<u64>,
    /// Orders answered `failed`, per second.
    pub failed: Vec<u64>,
    /// Requests that reached the payment service, per second.
    pub payment_calls: Vec<u64>,
}

impl Timeline {
    /// Buckets a run by second.
    pub fn of(run: &RunReport) -> Timeline {
        let secs = run.wall.as_secs().max(run.config.duration.as_secs()) as usize + 1;
        let mut t = Timeline {
            completed: vec![0; secs],
            pending: vec![0; secs],
            failed: vec![0; secs],
            payment_calls: vec![0; secs],
        };
        for r in &run.records {
            let i = (r.sent_at.as_secs() as usize).min(secs - 1);
            match r.answer {
                Answer::Completed => t.completed[i] += 1,
                Answer::Pending(_) => t.pending[i] += 1,
                Answer::Failed(_) => t.failed[i] += 1,
            }
        }
        for (at, _) in &run.payment.arrivals {
            t.payment_calls[(at.as_secs() as usize).min(secs - 1)] += 1;
        }
        t
    }
}

/// The breaker's state over `[0, end)` as bands `(from, to, state)`, in seconds.
pub fn state_bands(changes: &[(Duration, State)], end: Duration) -> Vec<(f64, f64, State)> {
    let mut bands = Vec::new();
    let mut from = 0.0;
    let mut state = State::Closed;
    for (at, to) in changes {
        let t = at.as_secs_f64();
        if t > from {
            bands.push((from, t, state));
        }
        from = t;
        state = *to;
    }
    let end = end.as_secs_f64();
    if end > from {
        bands.push((from, end, state));
    }
    bands
}

/// Draws the timeline of both runs, one panel each on the same time axis: orders per second by
/// answer, requests reaching the payment service per second, the breaker's state as bands
/// (open red, half-open amber) and the outage as a grey bar under the time axis. Returns the
/// SVG document. Text is left to the viewer's fonts: no font file is read, so this needs
/// no fontconfig.
pub fn svg(without: &RunReport, with: &RunReport) -> Result<String, Box<dyn std::error::Error>> {
    let (a, b) = (Timeline::of(without), Timeline::of(with));
    let end = a.completed.len().max(b.completed.len()) as f64;
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (1100, 800)).into_drawing_area();
        root.fill(&WHITE)?;
        let (upper, lower) = root.split_vertically(400);
        panel(&upper, without, &a, end)?;
        panel(&lower, with, &b, end)?;
        root.present()?;
    }
    Ok(out)
}

const GREEN: RGBColor = RGBColor(46, 160, 67);
const BLUE: RGBColor = RGBColor(31, 111, 235);
const RED_LINE: RGBColor = RGBColor(207, 34, 46);
const AMBER: RGBColor = RGBColor(210, 153, 34);
const GREY: RGBColor = RGBColor(110, 118, 129);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    run: &RunReport,
    t: &Timeline,
    end: f64,
) -> Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    // Room above the highest line for the legend; the outage bar goes below zero.
    let peak = t
        .completed
        .iter()
        .chain(&t.pending)
        .chain(&t.failed)
        .chain(&t.payment_calls)
        .copied()
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let top = peak * 1.6;
    let s = Summary::of(run);
    let recovery = match (run.mode, s.recovery_to_closed) {
        (crate::drill::Mode::WithBreaker, Some(d)) => {
            format!("; closed {:.1} s after recovery", d.as_secs_f64())
        }
        (crate::drill::Mode::WithBreaker, None) => "; never closed".to_owned(),
        _ => String::new(),
    };
    let caption = format!(
        "{}: {} calls reached the failing payment service; outage p99 {}; {} failed, {} lost{}",
        run.mode.label(),
        s.calls_during_outage,
        ms(s.p99),
        s.failed,
        s.lost,
        recovery,
    );
    let bottom = -top / 10.0;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 17))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(0f64..end, bottom..top)?;
    chart
        .configure_mesh()
        .x_desc("seconds since start")
        .y_desc("per second")
        .y_label_formatter(&|v| {
            if *v < 0.0 {
                String::new()
            } else {
                format!("{v:.0}")
            }
        })
        .light_line_style(WHITE)
        .draw()?;

    // Breaker state bands behind everything.
    for (from, to, state) in state_bands(&run.changes, Duration::from_secs_f64(end)) {
        let color = match state {
            State::Open | State::ForcedOpen => RED_LINE.mix(0.13),
            State::HalfOpen => AMBER.mix(0.35),
            _ => continue,
        };
        chart.draw_series(std::iter::once(Rectangle::new(
            [(from, 0.0), (to, top)],
            color.filled(),
        )))?;
    }
    if run.mode == crate::drill::Mode::WithBreaker {
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label("breaker open")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], RED_LINE.mix(0.13).filled())
            });
        chart
            .draw_series(std::iter::empty::<Rectangle<(f64, f64)>>())?
            .label("breaker half-open")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 5), (x + 16, y + 5)], AMBER.mix(0.35).filled())
            });
    }
    // The outage, as a bar under the time axis.
    let plan = run.config.fault_plan();
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [
                (plan.outage_start.as_secs_f64(), bottom * 0.8),
                (plan.outage_end().as_secs_f64(), bottom * 0.2),
            ],
            GREY.mix(0.6).filled(),
        )))?
        .label("payment outage")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 16, y + 5)], GREY.mix(0.6).filled()));

    let series: [(&str, &[u64], RGBColor); 4] = [
        ("orders completed at once", &t.completed, GREEN),
        ("orders queued (202 pending)", &t.pending, BLUE),
        ("orders failed", &t.failed, RED_LINE),
        ("requests reaching payment", &t.payment_calls, BLACK),
    ];
    for (label, values, color) in series {
        chart
            .draw_series(LineSeries::new(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| (i as f64 + 0.5, v as f64)),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(GREY)
        .label_font(("sans-serif", 13))
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_run() {
        let s = Duration::from_secs;
        let bands = state_bands(
            &[
                (s(2), State::Open),
                (s(3), State::HalfOpen),
                (s(3), State::Open),
                (s(5), State::HalfOpen),
                (s(6), State::Closed),
            ],
            s(10),
        );
        assert_eq!(
            bands,
            vec![
                (0.0, 2.0, State::Closed),
                (2.0, 3.0, State::Open),
                (3.0, 5.0, State::Open),
                (5.0, 6.0, State::HalfOpen),
                (6.0, 10.0, State::Closed),
            ]
        );
    }
}
