//! Chaos tests: the real binary's `serve payment` and `serve orders` as child processes on
//! loopback ports, killed with SIGKILL while orders are queued, while the worker drains, and
//! while a payment request is in flight; restarted on the same data directory; and every
//! accepted order (`201` or `202`) checked against the payment service's own ledger: paid
//! exactly once. Bounded in count and in time: every wait polls against a deadline.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::StatusCode;
use outage_drill::net::{self, HttpClient};
use outage_drill::orders::{OrderReply, OrderRequest, OrderState};
use tokio::time::Instant;
use tower::ServiceExt;

type Error = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), Error>;

const BIN: &str = env!("CARGO_BIN_EXE_outage-drill");

/// A service running as a child process; killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    /// `http://127.0.0.1:PORT`, from the line it printed when it started listening.
    base: String,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Starts `outage-drill serve ARGS` (through `sh -c 'ulimit -f BLOCKS; ...'` when
    /// `file_blocks` is set) and waits, at most 20 s, for its "listening on" line.
    fn start(args: &[&str], file_blocks: Option<u32>) -> Result<Proc, Error> {
        let mut command = match file_blocks {
            None => Command::new(BIN),
            Some(blocks) => {
                // A file size limit (RLIMIT_FSIZE; `ulimit -f` counts 512-byte blocks in
                // dash, Debian's sh) with SIGXFSZ ignored: writes past it fail with EFBIG,
                // as they would with ENOSPC on a full disk.
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(format!(
                        "ulimit -f {blocks}; trap '' XFSZ; exec \"$0\" \"$@\""
                    ))
                    .arg(BIN);
                c
            }
        };
        let mut child = command
            .arg("serve")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().ok_or("no stdout")?;
        let lines = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let url = line.find("listening on http://").map(|i| {
                    line[i + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_owned()
                });
                // The line is kept before the URL is handed over.
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                if let Some(url) = url {
                    let _ = tx.send(url);
                }
            }
        });
        let err = child.stderr.take().ok_or("no stderr")?;
        let lines = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                lines.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        let mut proc = Proc {
            child,
            base: String::new(),
            stdout,
            stderr,
        };
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(base) => {
                proc.base = base;
                Ok(proc)
            }
            Err(_) => Err(format!(
                "serve {args:?} did not start listening within 20 s; stderr: {:?}",
                proc.stderr()
            )
            .into()),
        }
    }

    fn payment(port: u16) -> Result<Proc, Error> {
        Proc::start(&["payment", "--port", &port.to_string()], None)
    }

    fn orders(payment: &str, data: &Path, extra: &[&str]) -> Result<Proc, Error> {
        Proc::orders_limited(payment, data, extra, None)
    }

    fn orders_limited(
        payment: &str,
        data: &Path,
        extra: &[&str],
        file_blocks: Option<u32>,
    ) -> Result<Proc, Error> {
        let data = data.to_str().ok_or("utf-8 path")?;
        let mut args = vec![
            "orders",
            "--port",
            "0",
            "--payment",
            payment,
            "--data",
            data,
        ];
        args.extend_from_slice(extra);
        Proc::start(&args, file_blocks)
    }

    fn port(&self) -> Result<u16, Error> {
        Ok(self.base.rsplit(':').next().ok_or("no port")?.parse()?)
    }

    /// SIGKILL, and wait for the process to be gone.
    fn kill_9(&mut self) -> TestResult {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }

    fn stdout(&self) -> Vec<String> {
        self.stdout
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn stderr(&self) -> Vec<String> {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 25 ms until it returns `Some`, for at most `limit`.
async fn poll<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {limit:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn get_json(client: &HttpClient, url: String) -> Result<serde_json::Value, Error> {
    let response = client.clone().oneshot(net::get(&url)).await?;
    Ok(serde_json::from_slice(response.body())?)
}

async fn post(client: &HttpClient, url: String, body: serde_json::Value) -> TestResult {
    let response = client.clone().oneshot(net::post_json(&url, &body)).await?;
    if response.status() != StatusCode::OK {
        return Err(format!("POST {url}: {}", response.status()).into());
    }
    Ok(())
}

async fn order(
    client: &HttpClient,
    base: &str,
    order_id: &str,
) -> Result<(StatusCode, OrderReply), Error> {
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        client.clone().oneshot(net::post_json(
            &format!("{base}/orders"),
            &OrderRequest {
                order_id: order_id.to_owned(),
                amount_cents: 1000,
            },
        )),
    )
    .await??;
    Ok((response.status(), serde_json::from_slice(response.body())?))
}

async fn set_fault(client: &HttpClient, payment: &str, fault: serde_json::Value) -> TestResult {
    post(client, format!("{payment}/admin/fault"), fault).await
}

async fn queue_depth(client: &HttpClient, orders: &str) -> Option<u64> {
    get_json(client, format!("{orders}/health")).await.ok()?["queue_depth"].as_u64()
}

async fn charges(client: &HttpClient, payment: &str) -> Result<BTreeMap<String, u32>, Error> {
    Ok(serde_json::from_value(
        get_json(client, format!("{payment}/admin/charges")).await?,
    )?)
}

/// Sends `ids` one after another and checks that each is queued (`202 pending`).
async fn send_queued(client: &HttpClient, base: &str, ids: &[String]) -> TestResult {
    for id in ids {
        let (status, reply) = order(client, base, id).await?;
        assert_eq!(
            (status, reply.status),
            (StatusCode::ACCEPTED, OrderState::Pending),
            "{id}: {reply:?}"
        );
    }
    Ok(())
}

async fn fail_payment(client: &HttpClient, payment: &str) -> TestResult {
    set_fault(client, payment, serde_json::json!({"mode": "fail"})).await
}

async fn recover_payment(client: &HttpClient, payment: &str) -> TestResult {
    set_fault(client, payment, serde_json::json!({"mode": "recover"})).await
}

/// Starts the order service again on `dir`, and checks that it found `queued` orders.
fn restart_orders(payment: &str, dir: &Path, queued: usize) -> Result<Proc, Error> {
    let restarted = Proc::orders(payment, dir, &[])?;
    let line = restarted.stdout().first().cloned().unwrap_or_default();
    let expected = format!("{queued} orders queued)");
    if !line.ends_with(&expected) {
        return Err(format!("after the restart: {line:?}, expected {expected:?}").into());
    }
    Ok(restarted)
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

/// Waits until the order service's queue is empty, then checks that `accepted` orders were
/// each charged exactly once by the payment service at `payment`, and nothing else was.
async fn assert_paid_exactly_once(
    client: &HttpClient,
    orders: &str,
    payment: &str,
    accepted: &[String],
) -> TestResult {
    poll(Duration::from_secs(30), "the queue drains", || async {
        (queue_depth(client, orders).await? == 0).then_some(())
    })
    .await?;
    let ledger = charges(client, payment).await?;
    let expected: BTreeMap<String, u32> = accepted.iter().map(|id| (id.clone(), 1)).collect();
    assert_eq!(ledger, expected);
    for id in accepted {
        let reply = get_json(client, format!("{orders}/orders/{id}")).await?;
        assert_eq!(reply["status"], "completed", "{id}: {reply}");
    }
    let stats = get_json(client, format!("{payment}/admin/stats")).await?;
    assert_eq!(stats["orders_charged_twice"], 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_queued_before_a_kill_9_are_paid_once_after_the_restart() -> TestResult {
    let dir = tempfile::tempdir()?;
    let client = net::tcp_client();
    let payment = Proc::payment(0)?;
    fail_payment(&client, &payment.base).await?;

    let mut orders = Proc::orders(&payment.base, dir.path(), &[])?;
    let queued = ids("q", 30);
    send_queued(&client, &orders.base, &queued).await?;
    assert_eq!(queue_depth(&client, &orders.base).await, Some(30));
    orders.kill_9()?;

    recover_payment(&client, &payment.base).await?;
    let restarted = restart_orders(&payment.base, dir.path(), 30)?;
    assert_paid_exactly_once(&client, &restarted.base, &payment.base, &queued).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_while_draining_loses_nothing_and_pays_nothing_twice() -> TestResult {
    let dir = tempfile::tempdir()?;
    let client = net::tcp_client();
    let payment = Proc::payment(0)?;
    fail_payment(&client, &payment.base).await?;
    let mut orders = Proc::orders(
        &payment.base,
        dir.path(),
        &["--drain-concurrency", "2", "--timeout", "2s"],
    )?;
    let mut accepted = ids("d", 40);
    send_queued(&client, &orders.base, &accepted).await?;

    // Payment is back but slow: the worker drains two at a time, 150 ms each.
    set_fault(
        &client,
        &payment.base,
        serde_json::json!({"mode": "slow", "ms": 150}),
    )
    .await?;
    poll(
        Duration::from_secs(20),
        "the drain is under way",
        || async {
            let paid = charges(&client, &payment.base).await.ok()?.len();
            (paid >= 6).then_some(())
        },
    )
    .await?;
    orders.kill_9()?;
    let paid_at_kill = charges(&client, &payment.base).await?.len();
    eprintln!("kill -9 while draining: {paid_at_kill} of 40 charged at the kill");
    assert!(
        (6..40).contains(&paid_at_kill),
        "killed mid-drain: {paid_at_kill} of 40 charged"
    );

    recover_payment(&client, &payment.base).await?;
    let restarted = Proc::orders(&payment.base, dir.path(), &[])?;
    // New orders after the restart are paid at once.
    for id in ids("after", 5) {
        let (status, reply) = order(&client, &restarted.base, &id).await?;
        assert_eq!(
            (status, reply.status),
            (StatusCode::CREATED, OrderState::Completed),
            "{reply:?}"
        );
        accepted.push(id);
    }
    assert_paid_exactly_once(&client, &restarted.base, &payment.base, &accepted).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payment_killed_mid_request_then_restarted_pays_each_queued_order_once() -> TestResult {
    let dir = tempfile::tempdir()?;
    let client = net::tcp_client();
    let mut first_payment = Proc::payment(0)?;
    let port = first_payment.port()?;
    let payment_base = first_payment.base.clone();
    let orders = Proc::orders(&payment_base, dir.path(), &["--timeout", "8s"])?;

    // Paid at once by the first payment process.
    let paid_first = ids("p", 5);
    for id in &paid_first {
        let (status, reply) = order(&client, &orders.base, id).await?;
        assert_eq!(
            (status, reply.status),
            (StatusCode::CREATED, OrderState::Completed)
        );
    }
    assert_eq!(
        charges(&client, &payment_base).await?,
        paid_first.iter().map(|id| (id.clone(), 1)).collect()
    );

    // Three orders whose payment requests hang; payment dies while they are in flight.
    set_fault(
        &client,
        &payment_base,
        serde_json::json!({"mode": "hang", "ms": 30000}),
    )
    .await?;
    let in_flight = ids("h", 3);
    let mut answers = tokio::task::JoinSet::new();
    for id in in_flight.clone() {
        let (client, base) = (client.clone(), orders.base.clone());
        answers.spawn(async move { order(&client, &base, &id).await });
    }
    poll(
        Duration::from_secs(10),
        "three requests in flight",
        || async {
            let stats = get_json(&client, format!("{payment_base}/admin/stats"))
                .await
                .ok()?;
            (stats["requests"].as_u64()? == 8).then_some(())
        },
    )
    .await?;
    first_payment.kill_9()?;
    while let Some(answer) = answers.join_next().await {
        let (status, reply) = answer??;
        assert_eq!(
            (status, reply.status),
            (StatusCode::ACCEPTED, OrderState::Pending),
            "{reply:?}"
        );
        assert_eq!(reply.reason.as_deref(), Some("payment_unreachable"));
    }
    // More orders while payment is gone: queued too.
    let while_down = ids("w", 10);
    send_queued(&client, &orders.base, &while_down).await?;

    // A new payment process on the same port pays the queue, each order once; it is never
    // asked to pay the orders the first one paid.
    let second_payment = Proc::payment(port)?;
    let queued: Vec<String> = in_flight.into_iter().chain(while_down).collect();
    assert_paid_exactly_once(&client, &orders.base, &second_payment.base, &queued).await?;
    for id in &paid_first {
        let reply = get_json(&client, format!("{}/orders/{id}", orders.base)).await?;
        assert_eq!(reply["status"], "completed");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_data_dir_is_a_clear_error_and_nothing_accepted_is_lost() -> TestResult {
    // The queue on tmpfs when there is one (its fsync is free, so filling it is quick).
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let client = net::tcp_client();
    let payment = Proc::payment(0)?;
    fail_payment(&client, &payment.base).await?;
    // A new queue file is about 1.55 MB (3104 blocks); it may not grow past 3200 blocks.
    let mut orders = Proc::orders_limited(&payment.base, dir.path(), &[], Some(3200))?;

    // Orders with long ids, eight at a time, until one is refused (bounded: 4000 orders).
    let pad = "x".repeat(100);
    let mut accepted = Vec::new();
    let mut refused = None;
    'send: for batch in 0..500 {
        let mut sent = tokio::task::JoinSet::new();
        for i in 0..8 {
            let id = format!("{pad}-{batch:03}-{i}");
            let (client, base) = (client.clone(), orders.base.clone());
            sent.spawn(async move { (id.clone(), order(&client, &base, &id).await) });
        }
        let mut batch_refused = None;
        while let Some(joined) = sent.join_next().await {
            let (id, answer) = joined?;
            let (status, reply) = answer?;
            match status {
                StatusCode::ACCEPTED => accepted.push(id),
                _ => batch_refused = batch_refused.or(Some((status, reply))),
            }
        }
        if batch_refused.is_some() {
            refused = batch_refused;
            break 'send;
        }
    }
    let (status, reply) = refused.ok_or("the queue never filled")?;
    eprintln!(
        "full data dir: {} orders accepted, then {status}: {:?}",
        accepted.len(),
        reply.reason
    );
    assert!(
        accepted.len() > 100,
        "only {} accepted before the disk filled",
        accepted.len()
    );
    assert_eq!(reply.status, OrderState::Failed);
    let reason = reply.reason.unwrap_or_default();
    // The first refusal names the cause; later ones say the queue must be reopened.
    assert!(
        status == StatusCode::INSUFFICIENT_STORAGE || status == StatusCode::INTERNAL_SERVER_ERROR,
        "{status}"
    );
    assert!(reason.starts_with("storage: order queue: "), "{reason}");
    assert!(
        reason.contains("File too large") || reason.contains("Previous I/O error"),
        "{reason}"
    );
    orders.kill_9()?;

    // Restarted without the limit on the same directory: every accepted order is there,
    // and is paid once payment is back.
    let restarted = restart_orders(&payment.base, dir.path(), accepted.len())?;
    recover_payment(&client, &payment.base).await?;
    assert_paid_exactly_once(&client, &restarted.base, &payment.base, &accepted).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_errors_are_clear_and_an_unreachable_payment_is_not_fatal() -> TestResult {
    let dir = tempfile::tempdir()?;
    let client = net::tcp_client();

    // Payment not running: the order service starts, warns, and queues.
    let nobody = std::net::TcpListener::bind("127.0.0.1:0")?;
    let dead_url = format!("http://{}", nobody.local_addr()?);
    drop(nobody);
    let orders = Proc::orders(&dead_url, &dir.path().join("data"), &[])?;
    let (status, reply) = order(&client, &orders.base, "o-1").await?;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(reply.reason.as_deref(), Some("payment_unreachable"));
    let warned = poll(Duration::from_secs(5), "a warning on stderr", || async {
        orders
            .stderr()
            .into_iter()
            .find(|l| l.starts_with("warning: "))
    })
    .await?;
    assert!(warned.contains("is unreachable now"), "{warned}");

    let run = |args: &[&str]| -> Result<(Option<i32>, String), Error> {
        let out = Command::new(BIN).arg("serve").args(args).output()?;
        Ok((out.status.code(), String::from_utf8(out.stderr)?))
    };
    let data = dir.path().join("other");
    let data = data.to_str().ok_or("utf-8")?;
    // The port of the running order service is in use.
    let port = orders.port()?.to_string();
    let (code, stderr) = run(&["orders", "--port", &port, "--data", data])?;
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is in use")),
        "{stderr}"
    );
    let (code, stderr) = run(&["payment", "--port", &port])?;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is in use"), "{stderr}");
    // Its data dir is locked by it.
    let locked = dir.path().join("data");
    let (code, stderr) = run(&[
        "orders",
        "--port",
        "0",
        "--data",
        locked.to_str().ok_or("utf-8")?,
    ])?;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("cannot open the queue"), "{stderr}");
    assert!(stderr.contains("Cannot acquire lock"), "{stderr}");
    // A file where the data dir should be.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"")?;
    let (code, stderr) = run(&[
        "orders",
        "--port",
        "0",
        "--data",
        file.to_str().ok_or("utf-8")?,
    ])?;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("is unusable: it is a file, not a directory"),
        "{stderr}"
    );
    // A payment URL that is not one: clap-style message, nothing started.
    let (code, stderr) = run(&["orders", "--port", "0", "--data", data, "--payment", "8090"])?;
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("is not a URL like http://127.0.0.1:8090"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_a_service_cleanly() -> TestResult {
    let dir = tempfile::tempdir()?;
    let client = net::tcp_client();
    let payment = Proc::payment(0)?;
    let mut orders = Proc::orders(&payment.base, dir.path(), &[])?;
    let (status, _) = order(&client, &orders.base, "o-1").await?;
    assert_eq!(status, StatusCode::CREATED);
    // The shell's own `kill`: no procps needed.
    let killed = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", orders.child.id()))
        .status()?;
    assert!(killed.success());
    let code = poll(Duration::from_secs(10), "the process exits", || {
        let exited = orders.child.try_wait().ok().flatten();
        async move { exited }
    })
    .await?;
    assert!(code.success(), "{code:?}");
    assert_eq!(
        orders.stdout().last().map(String::as_str),
        Some("orders: stopped (1 paid at once, 0 queued, 0 paid from the queue, 0 still queued)")
    );
    // The queue file is closed: a new instance opens it at once.
    let again = Proc::orders(&payment.base, dir.path(), &[])?;
    let reply = get_json(&client, format!("{}/orders/o-1", again.base)).await?;
    assert_eq!(reply["status"], "completed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_load_run_with_flips_has_no_unexpected_error_and_pays_each_order_once() -> TestResult
{
    let dir = tempfile::tempdir()?;
    let payment = Proc::payment(0)?;
    let orders = Proc::orders(&payment.base, dir.path(), &[])?;
    let out = tokio::task::spawn_blocking({
        let (orders, payment) = (orders.base.clone(), payment.base.clone());
        move || {
            Command::new(BIN)
                .args(["load", "--orders", &orders, "--payment", &payment])
                .args(["--connections", "16", "--duration", "2s", "--flip", "500ms"])
                .args(["--settle", "30s"])
                .output()
        }
    })
    .await??;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |start: &str| -> Result<String, Error> {
        Ok(stdout
            .lines()
            .find(|l| l.starts_with(start))
            .ok_or_else(|| format!("no line {start:?} in\n{stdout}"))?
            .to_owned())
    };
    assert_eq!(line("  unexpected")?, "  unexpected        0");
    assert_eq!(
        line("payment flips")?,
        "payment flips       3 (healthy <-> failing)"
    );
    assert!(line("after the load")?.contains("breaker closed and queue empty after"));
    // The run's own ledger check, and the payment service's: every accepted order once.
    let paid = |prefix: &str| -> Result<u64, Error> {
        Ok(line(prefix)?
            .split_whitespace()
            .last()
            .ok_or("no count")?
            .parse()?)
    };
    let accepted = paid("  201 paid")? + paid("  202 queued")?;
    assert!(accepted > 0);
    assert_eq!(
        line("accepted orders")?,
        format!("accepted orders     {accepted} paid exactly once, 0 unpaid, 0 paid twice")
    );
    let client = net::tcp_client();
    let ledger = charges(&client, &payment.base).await?;
    assert_eq!(ledger.len() as u64, accepted);
    assert!(ledger.values().all(|&n| n == 1));
    Ok(())
}
