//! The binary: bad flags get a clear message; a tiny drill over real TCP runs end to end.

use std::process::Command;

fn drill(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_outage-drill"))
        .arg("drill")
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn bad_flags_are_refused_with_a_reason() {
    for (args, message) in [
        (
            &["--rate", "0"][..],
            "the rate must be at least 1 order per second",
        ),
        (
            &[
                "--duration",
                "10s",
                "--outage-start",
                "5s",
                "--outage",
                "6s",
            ][..],
            "must end before the load does",
        ),
        (&["--duration", "soon"][..], "is not a duration"),
        (&["--outage", "0s"][..], "the outage must not be zero"),
    ] {
        let out = drill(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_tiny_drill_runs_end_to_end_over_tcp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let svg = dir.path().join("timeline.svg");
    let out = drill(&[
        "--duration",
        "3s",
        "--outage-start",
        "1s",
        "--outage",
        "1s",
        "--rate",
        "20",
        "--timeout",
        "300ms",
        "--hang",
        "1s",
        "--quiet",
        "--svg",
        svg.to_str().expect("utf-8 path"),
        "--data-dir",
        dir.path().to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = |name: &str| -> Vec<String> {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("| {name}")))
            .unwrap_or_else(|| panic!("no row {name:?} in\n{stdout}"));
        line.split('|')
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty())
            .collect()
    };
    assert_eq!(row("orders sent"), ["orders sent", "60", "60"]);
    // Nothing lost or paid twice with the breaker, and nothing failed.
    assert_eq!(row("orders lost")[2], "0");
    assert_eq!(row("orders paid twice")[2], "0");
    assert_eq!(row("orders failed")[2], "0");
    // The queue file is kept in --data-dir: empty, and holding every order it drained.
    let queue = outage_drill::queue::Queue::open(dir.path().join("orders-with-breaker.redb"))
        .expect("the queue file opens");
    assert_eq!(queue.pending_len().expect("readable"), 0);
    assert_eq!(
        queue.completed().expect("readable").len().to_string(),
        row("orders queued, then completed")[2]
    );
    let document = std::fs::read_to_string(&svg).expect("the timeline was written");
    assert!(document.starts_with("<svg"));
}
