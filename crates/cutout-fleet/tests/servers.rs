//! The fleet against real Redis and NATS servers, with several OS processes (`fleet-node`).
//!
//! Each test starts its own server (`redis-server --port P --save '' --appendonly no`,
//! `nats-server -a 127.0.0.1 -p P`) on a free loopback port, so it can kill and restart it.
//! A missing server binary fails the test with a message saying how to install it. Every
//! wait is a poll with a bounded deadline; nothing sleeps to let time pass.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::time::{Instant, timeout};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Redis,
    Nats,
}

impl Kind {
    fn binary(self) -> PathBuf {
        let (name, paths): (&str, &[&str]) = match self {
            Kind::Redis => (
                "redis-server",
                &["/usr/bin/redis-server", "/usr/local/bin/redis-server"],
            ),
            Kind::Nats => (
                "nats-server",
                &[
                    "/usr/sbin/nats-server",
                    "/usr/bin/nats-server",
                    "/usr/local/bin/nats-server",
                ],
            ),
        };
        let found = paths
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .or_else(|| {
                std::env::var_os("PATH").and_then(|path| {
                    std::env::split_paths(&path)
                        .map(|dir| dir.join(name))
                        .find(|p| p.exists())
                })
            });
        found.unwrap_or_else(|| {
            panic!(
                "{name} is not installed: these tests need the real server \
                 (`apt-get install -y redis-server nats-server`; .ci/run installs them)"
            )
        })
    }

    fn url(self, port: u16) -> String {
        match self {
            Kind::Redis => format!("redis://127.0.0.1:{port}/"),
            Kind::Nats => format!("nats://127.0.0.1:{port}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Redis => "redis",
            Kind::Nats => "nats",
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server child process on a fixed loopback port, killed when dropped.
struct Server {
    kind: Kind,
    port: u16,
    child: Option<Child>,
}

impl Server {
    async fn start(kind: Kind) -> Server {
        let mut server = Server {
            kind,
            port: free_port(),
            child: None,
        };
        server.restart().await;
        server
    }

    async fn restart(&mut self) {
        let port = self.port.to_string();
        let mut command = Command::new(self.kind.binary());
        match self.kind {
            Kind::Redis => command.args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]),
            Kind::Nats => command.args(["-a", "127.0.0.1", "-p", &port]),
        };
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.kind.name()));
        self.child = Some(child);
        // Bounded: the port accepts within 10 s (a restart may wait for the old socket).
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "{} did not listen on {}",
                self.kind.name(),
                self.port
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn kill(&mut self) {
        let mut child = self.child.take().expect("server running");
        child.kill().await.unwrap();
    }

    fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("server running");
        let status = std::process::Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn url(&self) -> String {
        self.kind.url(self.port)
    }
}

/// One `fleet-node` process.
struct Node {
    _child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Node {
    async fn start(server: &Server, channel: &str, id: u64, quorum: usize) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fleet-node"))
            .args([
                server.kind.name(),
                &server.url(),
                channel,
                &id.to_string(),
                &quorum.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut node = Node {
            _child: child,
            stdin,
            stdout,
        };
        assert_eq!(node.recv().await, "ready");
        node
    }

    async fn send(&mut self, command: &str) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    async fn recv(&mut self) -> String {
        timeout(Duration::from_secs(20), self.stdout.next_line())
            .await
            .expect("node answers within 20 s")
            .unwrap()
            .expect("node is running")
    }

    /// Waits (at most `ms`) for the node's breaker to open; returns how long that took, as
    /// the node measured it, or `None` on its timeout.
    async fn opened(&mut self) -> Option<u64> {
        let answer = self.recv().await;
        if answer == "timeout" {
            return None;
        }
        let ms = answer
            .strip_prefix("open after ")
            .and_then(|rest| rest.strip_suffix(" ms"))
            .unwrap_or_else(|| panic!("unexpected answer `{answer}`"));
        Some(ms.parse().unwrap())
    }

    async fn ask(&mut self, command: &str) -> String {
        self.send(command).await;
        self.recv().await
    }

    /// Polls `stats` until `field` reaches at least `at_least`, for at most 5 s.
    async fn wait_stat(&mut self, field: &str, at_least: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let stats = self.ask("stats").await;
            let value = stats
                .split_whitespace()
                .find_map(|w| w.strip_prefix(field)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no {field} in `{stats}`"));
            if value >= at_least || Instant::now() >= deadline {
                return value;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

async fn nodes(server: &Server, quorum: usize, count: u64) -> Vec<Node> {
    let channel = format!("cutout-fleet-test-{}", server.port);
    let mut nodes = Vec::new();
    for id in 1..=count {
        nodes.push(Node::start(server, &channel, id, quorum).await);
    }
    for node in &mut nodes {
        assert_eq!(node.ask("wait-link up 10000").await, "link up");
    }
    nodes
}

/// The "within 200 ms" is a latency target: on this shared 2-core machine a process
/// can go unscheduled for longer than that, so (as the brief asks of speed targets) the
/// test asserts the hold with a bounded 5 s deadline and prints the latency each node
/// measured, from before the trip to its breaker opening; the report quotes those numbers.
async fn a_trip_in_one_process_holds_the_others(kind: Kind) {
    let server = Server::start(kind).await;
    let mut n = nodes(&server, 1, 3).await;
    // B and C start watching, then A trips.
    n[1].send("wait-open 5000").await;
    n[2].send("wait-open 5000").await;
    assert_eq!(n[0].ask("trip").await, "state open");
    let b = n[1].opened().await.expect("B held open within 5 s");
    let Some(c) = n[2].opened().await else {
        let (a, cs) = (n[0].ask("stats").await, n[2].ask("stats").await);
        panic!(
            "C not held within 5 s: A {a}; C {cs}; C {}",
            n[2].ask("link").await
        );
    };
    println!(
        "{}: trip to hold: B {b} ms, C {c} ms (target 200 ms)",
        kind.name()
    );
    assert_eq!(n[1].ask("call").await, "call rejected");
    // The holders publish nothing: no echo.
    assert_eq!(n[1].wait_stat("published", 0).await, 0);
    assert_eq!(n[0].wait_stat("published", 1).await, 1);
}

async fn a_fault_seen_by_one_process_never_holds_the_others_at_quorum_2(kind: Kind) {
    let server = Server::start(kind).await;
    let mut n = nodes(&server, 2, 3).await;
    assert_eq!(n[0].ask("trip").await, "state open");
    // C got A's message (received counts its own messages too: none here yet).
    assert_eq!(n[2].wait_stat("received", 1).await, 1);
    assert_eq!(n[2].ask("wait-open 300").await, "timeout");
    assert_eq!(n[2].ask("call").await, "call ok");
    // A second origin makes the quorum: C is held.
    n[2].send("wait-open 5000").await;
    assert_eq!(n[1].ask("trip").await, "state open");
    assert!(n[2].opened().await.is_some());
}

async fn processes_serve_through_a_server_outage_and_subscribe_again(kind: Kind) {
    let mut server = Server::start(kind).await;
    let mut n = nodes(&server, 1, 3).await;
    server.kill().await;
    for node in &mut n {
        assert_eq!(node.ask("wait-link down 10000").await, "link down");
    }
    // Every process keeps serving on its local breakers.
    for _ in 0..50 {
        assert_eq!(n[1].ask("call").await, "call ok");
    }
    assert_eq!(n[0].ask("trip").await, "state open");
    assert_eq!(n[1].ask("state").await, "state closed");
    assert_eq!(n[1].ask("call").await, "call ok");

    server.restart().await;
    for node in &mut n {
        assert_eq!(node.ask("wait-link up 15000").await, "link up");
    }
    if kind == Kind::Redis {
        // Redis: the subscription ended and was made again (NATS keeps its subscription
        // across the client's own reconnect).
        assert!(n[1].wait_stat("subscriptions", 2).await >= 2);
    }
    n[1].send("wait-open 5000").await;
    assert_eq!(n[2].ask("trip").await, "state open");
    assert!(n[1].opened().await.is_some());
    // A's trip during the outage was dropped and counted, not delivered late.
    assert_eq!(n[0].wait_stat("dropped", 1).await, 1);
    assert_eq!(n[0].wait_stat("published", 0).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_trip_in_one_process_holds_the_others() {
    a_trip_in_one_process_holds_the_others(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_trip_in_one_process_holds_the_others() {
    a_trip_in_one_process_holds_the_others(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_fault_seen_by_one_process_never_holds_the_others_at_quorum_2() {
    a_fault_seen_by_one_process_never_holds_the_others_at_quorum_2(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_fault_seen_by_one_process_never_holds_the_others_at_quorum_2() {
    a_fault_seen_by_one_process_never_holds_the_others_at_quorum_2(Kind::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_processes_serve_through_a_server_outage_and_subscribe_again() {
    processes_serve_through_a_server_outage_and_subscribe_again(Kind::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_processes_serve_through_a_server_outage_and_subscribe_again() {
    processes_serve_through_a_server_outage_and_subscribe_again(Kind::Nats).await;
}

/// A server that takes connections and then never answers (stopped with SIGSTOP): publishes
/// never return, and calls are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_publish_that_never_returns_leaves_calls_unaffected() {
    let server = Server::start(Kind::Redis).await;
    let mut n = nodes(&server, 1, 2).await;
    server.signal("-STOP");
    assert_eq!(n[0].ask("trip").await, "state open");
    for _ in 0..50 {
        assert_eq!(n[1].ask("call").await, "call ok");
    }
    assert_eq!(n[0].ask("call").await, "call rejected");
    // The publish times out (500 ms) and its message is dropped and counted.
    assert_eq!(n[0].wait_stat("dropped", 1).await, 1);
    assert_eq!(n[1].ask("state").await, "state closed");
    server.signal("-CONT");
}
