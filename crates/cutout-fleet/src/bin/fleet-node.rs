//! One fleet instance in its own process, driven over stdin/stdout, for the tests with real
//! Redis and NATS servers.
//!
//! ```text
//! fleet-node redis|nats URL CHANNEL INSTANCE_ID QUORUM
//! ```
//!
//! It runs one breaker, `payments` (threshold 5, open 10 s), with the fleet listener and
//! attached, and answers one line per command:
//!
//! | command | answer |
//! |---|---|
//! | `trip` | `state <state>` after five failures through the breaker |
//! | `call` | `call ok` or `call rejected`: one call to a healthy dependency |
//! | `state` | `state <state>` |
//! | `link` | `link up` or `link down` |
//! | `stats` | `stats published=.. dropped=.. received=.. holds=.. subscriptions=..` |
//! | `wait-open MS` | `open after N ms` once the breaker is open, or `timeout` after MS milliseconds |
//! | `wait-link up\|down MS` | `link ..` once the link is so, or `timeout` |

use std::time::Duration;

use cutout::{CircuitBreaker, State};
use cutout_fleet::{Fleet, NatsTransport, RedisTransport};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::time::Instant;

fn usage() -> ! {
    eprintln!("usage: fleet-node redis|nats URL CHANNEL INSTANCE_ID QUORUM");
    std::process::exit(2)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [kind, url, channel, id, quorum] = args.as_slice() else {
        usage()
    };
    let (Ok(id), Ok(quorum)) = (id.parse::<u64>(), quorum.parse::<usize>()) else {
        usage()
    };
    let builder = Fleet::builder()
        .instance_id(id)
        .quorum(quorum)
        .network_timeout(Duration::from_millis(500))
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(400));
    let started = match kind.as_str() {
        "redis" => RedisTransport::new(url, channel.as_str())
            .map_err(|e| e.to_string())
            .and_then(|t| builder.start(t).map_err(|e| e.to_string())),
        "nats" => builder
            .start(NatsTransport::new(url.as_str(), channel.as_str()))
            .map_err(|e| e.to_string()),
        _ => usage(),
    };
    let fleet = started.unwrap_or_else(|e| {
        eprintln!("fleet-node: {e}");
        std::process::exit(1)
    });
    let breaker = CircuitBreaker::builder()
        .name("payments")
        .failure_threshold(5)
        .open_duration(Duration::from_secs(10))
        .listener(fleet.listener())
        .build()
        .expect("valid breaker settings");
    fleet.attach(&breaker);

    let mut out = tokio::io::stdout();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    out.write_all(b"ready\n").await.ok();
    out.flush().await.ok();
    while let Ok(Some(line)) = lines.next_line().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["trip"] => {
                for _ in 0..5 {
                    let _ = breaker.call(|| Err::<(), _>("payment service down"));
                }
                format!("state {}", breaker.state())
            }
            ["call"] => match breaker.call(|| Ok::<_, ()>(())) {
                Ok(()) => "call ok".to_owned(),
                Err(_) => "call rejected".to_owned(),
            },
            ["state"] => format!("state {}", breaker.state()),
            ["link"] => link(&fleet).to_owned(),
            ["stats"] => {
                let s = fleet.stats();
                format!(
                    "stats published={} dropped={} received={} holds={} subscriptions={}",
                    s.published,
                    s.dropped(),
                    s.received,
                    s.holds,
                    s.subscriptions
                )
            }
            ["wait-open", ms] => {
                let start = Instant::now();
                let ready = wait(ms, || breaker.state() == State::Open).await;
                if ready {
                    format!("open after {} ms", start.elapsed().as_millis())
                } else {
                    "timeout".to_owned()
                }
            }
            ["wait-link", up, ms] => {
                let want = format!("link {up}");
                let ready = wait(ms, || link(&fleet) == want).await;
                if ready { want } else { "timeout".to_owned() }
            }
            _ => format!("error unknown command `{line}`"),
        };
        out.write_all(format!("{answer}\n").as_bytes()).await.ok();
        out.flush().await.ok();
    }
}

fn link(fleet: &Fleet) -> &'static str {
    if fleet.link_up() {
        "link up"
    } else {
        "link down"
    }
}

/// Polls `done` every millisecond for at most `ms` milliseconds.
async fn wait(ms: &str, mut done: impl FnMut() -> bool) -> bool {
    let limit = Duration::from_millis(ms.parse().unwrap_or(0));
    let start = Instant::now();
    loop {
        if done() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
