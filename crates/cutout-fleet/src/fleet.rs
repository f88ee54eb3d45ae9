//! The fleet handle, its listener, and the two background tasks.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cutout::{Cause, CircuitBreaker, Listener, State, Transition};
use cutout_keyed::KeyedBreakers;
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::message::{MAX_NAME_LEN, Signal, SignalCause};
use crate::quorum::{Quorum, Verdict};
use crate::transport::{Incoming, Transport};

/// A setting of [`FleetBuilder`] out of range.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FleetConfigError {
    /// The quorum is 0.
    ZeroQuorum,
    /// The queue capacity is 0.
    ZeroQueue,
    /// A duration that must be positive is zero: the setting's name.
    ZeroDuration(&'static str),
    /// The share of keys that remote signals may hold open is not within `0.0..=1.0`.
    RemoteShareOutOfRange,
    /// The reconnect backoff's minimum exceeds its maximum.
    BackoffOrder,
    /// [`FleetBuilder::start`] was called outside a tokio runtime.
    NoRuntime,
}

impl fmt::Display for FleetConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FleetConfigError::ZeroQuorum => f.write_str("fleet quorum must be at least 1"),
            FleetConfigError::ZeroQueue => f.write_str("fleet queue capacity must be at least 1"),
            FleetConfigError::ZeroDuration(name) => write!(f, "fleet {name} must be positive"),
            FleetConfigError::RemoteShareOutOfRange => {
                f.write_str("fleet max remote share must be within 0.0..=1.0")
            }
            FleetConfigError::BackoffOrder => {
                f.write_str("fleet reconnect backoff minimum exceeds its maximum")
            }
            FleetConfigError::NoRuntime => f.write_str("fleet started outside a tokio runtime"),
        }
    }
}

impl std::error::Error for FleetConfigError {}

/// Settings of a [`Fleet`]; [`start`](Self::start) validates them and starts its tasks.
#[derive(Debug, Clone)]
pub struct FleetBuilder {
    instance_id: Option<u64>,
    quorum: usize,
    window: Duration,
    ttl: Duration,
    max_hold: Duration,
    queue: usize,
    max_remote_share: f64,
    network_timeout: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
}

impl Default for FleetBuilder {
    fn default() -> Self {
        FleetBuilder {
            instance_id: None,
            quorum: 2,
            window: Duration::from_secs(10),
            ttl: Duration::from_secs(10),
            max_hold: Duration::from_secs(60),
            queue: 64,
            max_remote_share: 0.5,
            network_timeout: Duration::from_secs(1),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(5),
        }
    }
}

impl FleetBuilder {
    /// This instance's id (default: random per process). Messages with it are our own.
    pub fn instance_id(mut self, id: u64) -> Self {
        self.instance_id = Some(id);
        self
    }

    /// Distinct other instances whose trips of a breaker, within the [`window`](Self::window),
    /// hold it open here (default 2). 1 follows any single instance.
    pub fn quorum(mut self, origins: usize) -> Self {
        self.quorum = origins;
        self
    }

    /// How long a received trip counts toward the quorum (default 10 s).
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// The time to live this instance's messages carry (default 10 s): a receiver counts a
    /// message at most this long after it got it, and this instance drops a message that
    /// waited longer than this in its own queue.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The longest a remote signal holds a breaker here (default 60 s); the breaker's own
    /// open duration caps it too.
    pub fn max_hold(mut self, hold: Duration) -> Self {
        self.max_hold = hold;
        self
    }

    /// The outgoing queue's capacity (default 64). A trip that finds it full is dropped and
    /// counted, never waited for.
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity;
        self
    }

    /// The largest share of a keyed registry's breakers that remote signals may hold open
    /// at once (default 0.5, like Envoy's max ejection percent). At least one key may be
    /// held when the share is above 0; 0 holds none.
    pub fn max_remote_share(mut self, share: f64) -> Self {
        self.max_remote_share = share;
        self
    }

    /// How long one publish or one subscribe may take (default 1 s): a publish that takes
    /// longer drops its message, a subscribe that takes longer is tried again after the
    /// backoff.
    pub fn network_timeout(mut self, timeout: Duration) -> Self {
        self.network_timeout = timeout;
        self
    }

    /// The wait before subscribing again after a failure: from `min`, doubling to `max`
    /// (default 100 ms to 5 s).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    fn validate(&self) -> Result<(), FleetConfigError> {
        if self.quorum == 0 {
            return Err(FleetConfigError::ZeroQuorum);
        }
        if self.queue == 0 {
            return Err(FleetConfigError::ZeroQueue);
        }
        for (name, d) in [
            ("window", self.window),
            ("ttl", self.ttl),
            ("max hold", self.max_hold),
            ("network timeout", self.network_timeout),
            ("reconnect backoff", self.backoff_min),
        ] {
            if d.is_zero() {
                return Err(FleetConfigError::ZeroDuration(name));
            }
        }
        if !(0.0..=1.0).contains(&self.max_remote_share) {
            return Err(FleetConfigError::RemoteShareOutOfRange);
        }
        if self.backoff_min > self.backoff_max {
            return Err(FleetConfigError::BackoffOrder);
        }
        Ok(())
    }

    /// Validates the settings and starts the fleet's two tasks (publisher, receiver) on the
    /// current tokio runtime. They stop when the last [`Fleet`] handle is dropped.
    pub fn start(self, transport: impl Transport) -> Result<Fleet, FleetConfigError> {
        self.validate()?;
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| FleetConfigError::NoRuntime)?;
        let (queue, outgoing) = mpsc::channel(self.queue);
        let (stop, stopped) = watch::channel(false);
        let shared = Arc::new(Shared {
            origin: self.instance_id.unwrap_or_else(random_id),
            queue,
            stats: Counters::default(),
            link_up: AtomicBool::new(false),
            targets: Mutex::new(Targets::default()),
            config: self,
        });
        set_link_gauge(false);
        let transport = Arc::new(transport);
        runtime.spawn(publish(
            shared.clone(),
            transport.clone(),
            outgoing,
            stopped.clone(),
        ));
        runtime.spawn(receive(shared.clone(), transport, stopped));
        Ok(Fleet {
            shared,
            _stop: Arc::new(StopOnDrop(stop)),
        })
    }
}

fn random_id() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()))
}

/// A handle to a running fleet signal. Clones share it; the background tasks stop when the
/// last handle is dropped. See the [crate docs](crate).
#[derive(Clone)]
pub struct Fleet {
    shared: Arc<Shared>,
    _stop: Arc<StopOnDrop>,
}

struct StopOnDrop(watch::Sender<bool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.send_replace(true);
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("instance_id", &format_args!("{:016x}", self.shared.origin))
            .field("link_up", &self.link_up())
            .field("stats", &self.stats())
            .finish()
    }
}

struct Shared {
    origin: u64,
    queue: mpsc::Sender<Outgoing>,
    stats: Counters,
    link_up: AtomicBool,
    targets: Mutex<Targets>,
    config: FleetBuilder,
}

#[derive(Debug)]
struct Outgoing {
    breaker: String,
    hold: Duration,
    cause: SignalCause,
    queued: Instant,
}

impl Fleet {
    /// The settings, to [`start`](FleetBuilder::start) a fleet with.
    pub fn builder() -> FleetBuilder {
        FleetBuilder::default()
    }

    /// The listener to add to each breaker whose trips this instance publishes
    /// (`Builder::listener(fleet.listener())`, or the template of a keyed registry).
    pub fn listener(&self) -> FleetListener {
        FleetListener {
            shared: self.shared.clone(),
        }
    }

    /// Lets remote signals for `breaker`'s name hold it open here.
    pub fn attach(&self, breaker: &CircuitBreaker) {
        self.targets()
            .single
            .insert(breaker.name().to_owned(), breaker.clone());
    }

    /// Lets remote signals hold the breakers of a keyed registry open here, at most
    /// [`max_remote_share`](FleetBuilder::max_remote_share) of them at once. `key_of` maps a
    /// breaker name from a message back to its key (the inverse of the registry's
    /// `name_with`); names it maps to `None` are not this registry's.
    pub fn attach_keyed<K, S>(
        &self,
        registry: Arc<KeyedBreakers<K, S>>,
        key_of: impl Fn(&str) -> Option<K> + Send + Sync + 'static,
    ) where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        S: BuildHasher + Send + Sync + 'static,
    {
        self.targets().keyed.push(Box::new(KeyedTarget {
            registry,
            key_of,
            held: HashMap::new(),
        }));
    }

    /// Forces `breaker` open here (see [`CircuitBreaker::force_open`]) and tells the fleet,
    /// on purpose: every other instance holds its breaker of that name open for `hold`
    /// (capped by its own open duration), without a quorum. Returns whether the message was
    /// queued (false: the queue was full, the drop is counted).
    pub fn force_open(&self, breaker: &CircuitBreaker, hold: Duration) -> bool {
        breaker.force_open();
        self.shared
            .enqueue(breaker.name(), hold, SignalCause::ForcedOpen)
    }

    /// Whether the subscription is live.
    pub fn link_up(&self) -> bool {
        self.shared.link_up.load(Ordering::Relaxed)
    }

    /// This instance's id, as its messages carry it.
    pub fn instance_id(&self) -> u64 {
        self.shared.origin
    }

    /// The counters so far.
    pub fn stats(&self) -> FleetStats {
        self.shared.stats.snapshot()
    }

    fn targets(&self) -> std::sync::MutexGuard<'_, Targets> {
        self.shared
            .targets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Publishes this instance's local trips: add it to every breaker the fleet covers.
///
/// It acts only on a transition from closed to open caused by the breaker's own evidence
/// (consecutive failures, failure rate, slow-call rate), never on a hold from the fleet
/// itself ([`Cause::Remote`]), so signals do not echo. It puts one message into a bounded
/// queue with `try_send` (a full queue drops and counts it) and returns: no lock, no await,
/// no network on the thread that made the transition, and nothing at all on the call path.
#[derive(Clone)]
pub struct FleetListener {
    shared: Arc<Shared>,
}

impl fmt::Debug for FleetListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetListener")
            .field("instance_id", &format_args!("{:016x}", self.shared.origin))
            .finish()
    }
}

impl Listener for FleetListener {
    fn on_transition(&self, breaker: &str, t: &Transition) {
        if t.from == State::Closed && t.to == State::Open && t.cause != Cause::Remote {
            let hold = t.open_for.unwrap_or(self.shared.config.max_hold);
            self.shared.enqueue(breaker, hold, SignalCause::Trip);
        }
    }

    fn wants_call_events(&self) -> bool {
        false
    }
}

impl Shared {
    fn enqueue(&self, breaker: &str, hold: Duration, cause: SignalCause) -> bool {
        if breaker.is_empty() || breaker.len() > MAX_NAME_LEN {
            self.stats.count(Event::Unsendable);
            return false;
        }
        let message = Outgoing {
            breaker: breaker.to_owned(),
            hold,
            cause,
            queued: Instant::now(),
        };
        match self.queue.try_send(message) {
            Ok(()) => true,
            Err(_) => {
                self.stats.count(Event::QueueFull);
                false
            }
        }
    }

    fn set_link(&self, up: bool) {
        if self.link_up.swap(up, Ordering::Relaxed) != up {
            set_link_gauge(up);
            #[cfg(feature = "tracing")]
            if up {
                tracing::info!(target: "cutout_fleet", instance = self.origin, "fleet link up");
            } else {
                tracing::warn!(target: "cutout_fleet", instance = self.origin, "fleet link down; local breakers go on alone");
            }
        }
    }

    /// Holds `name` open in every attached target that has it.
    fn hold(&self, name: &str, hold: Duration, now: Instant) {
        let mut targets = self.targets.lock().unwrap_or_else(PoisonError::into_inner);
        let mut result = HoldResult::NotHere;
        if let Some(breaker) = targets.single.get(name) {
            result = result.max(if breaker.hold_open(hold) {
                HoldResult::Held
            } else {
                HoldResult::Unchanged
            });
        }
        let share = self.config.max_remote_share;
        for target in targets.keyed.iter_mut() {
            result = result.max(target.hold(name, hold, share, now));
        }
        match result {
            HoldResult::Held => self.stats.count(Event::Held),
            HoldResult::Capped => self.stats.count(Event::Capped),
            HoldResult::Unchanged | HoldResult::NotHere => {}
        }
        #[cfg(feature = "tracing")]
        tracing::debug!(target: "cutout_fleet", breaker = name, hold_ms = hold.as_millis() as u64, result = ?result, "fleet hold");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HoldResult {
    NotHere,
    Unchanged,
    Capped,
    Held,
}

#[derive(Default)]
struct Targets {
    single: HashMap<String, CircuitBreaker>,
    keyed: Vec<Box<dyn KeyedHold>>,
}

trait KeyedHold: Send {
    fn hold(&mut self, name: &str, hold: Duration, share: f64, now: Instant) -> HoldResult;
}

struct KeyedTarget<K, S, F> {
    registry: Arc<KeyedBreakers<K, S>>,
    key_of: F,
    /// Keys this target tripped from closed, until when.
    held: HashMap<K, Instant>,
}

impl<K, S, F> KeyedHold for KeyedTarget<K, S, F>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
    F: Fn(&str) -> Option<K> + Send + Sync + 'static,
{
    fn hold(&mut self, name: &str, hold: Duration, share: f64, now: Instant) -> HoldResult {
        let Some(key) = (self.key_of)(name) else {
            return HoldResult::NotHere;
        };
        self.held.retain(|_, until| *until > now);
        let state = self.registry.state(&key);
        let was_closed = matches!(state, None | Some(State::Closed));
        if was_closed && !self.held.contains_key(&key) {
            let total = self.registry.len() + usize::from(state.is_none());
            let allowed = if share > 0.0 {
                ((total as f64 * share) as usize).max(1)
            } else {
                0
            };
            if self.held.len() >= allowed {
                return HoldResult::Capped;
            }
        }
        let Ok(lease) = self.registry.lease(&key) else {
            return HoldResult::NotHere;
        };
        if !lease.hold_open(hold) {
            return HoldResult::Unchanged;
        }
        if was_closed {
            self.held.insert(key, now + hold);
        }
        HoldResult::Held
    }
}

/// What the fleet has done so far, per instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetStats {
    /// Messages published.
    pub published: u64,
    /// Messages dropped because the outgoing queue was full.
    pub dropped_queue_full: u64,
    /// Messages dropped because the publish failed or timed out, or they outlived their
    /// time to live in the queue.
    pub dropped_publish: u64,
    /// Messages received (all, own and invalid included).
    pub received: u64,
    /// Received messages that were our own.
    pub own: u64,
    /// Received messages no newer than their origin's last.
    pub stale: u64,
    /// Received messages whose time to live was zero.
    pub expired: u64,
    /// Received payloads that did not decode.
    pub invalid: u64,
    /// Holds that changed a breaker here.
    pub holds: u64,
    /// Holds refused by the cap on the share of keys held open.
    pub capped: u64,
    /// Subscriptions made (the first included).
    pub subscriptions: u64,
}

impl FleetStats {
    /// Every message dropped on the way out.
    pub fn dropped(&self) -> u64 {
        self.dropped_queue_full + self.dropped_publish
    }
}

#[derive(Debug, Clone, Copy)]
enum Event {
    Published,
    QueueFull,
    PublishFailed,
    Unsendable,
    Received,
    Own,
    Stale,
    Expired,
    Invalid,
    Held,
    Capped,
    Subscribed,
}

impl Event {
    const ALL: usize = 12;

    #[cfg(feature = "metrics")]
    fn label(self) -> &'static str {
        match self {
            Event::Published => "published",
            Event::QueueFull => "dropped_queue_full",
            Event::PublishFailed => "dropped_publish",
            Event::Unsendable => "dropped_unsendable",
            Event::Received => "received",
            Event::Own => "own",
            Event::Stale => "stale",
            Event::Expired => "expired",
            Event::Invalid => "invalid",
            Event::Held => "held",
            Event::Capped => "capped",
            Event::Subscribed => "subscribed",
        }
    }
}

#[derive(Default)]
struct Counters([AtomicU64; Event::ALL]);

impl Counters {
    fn count(&self, event: Event) {
        self.0[event as usize].fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        metrics::counter!("cutout_fleet_events_total", "event" => event.label()).increment(1);
    }

    fn get(&self, event: Event) -> u64 {
        self.0[event as usize].load(Ordering::Relaxed)
    }

    fn snapshot(&self) -> FleetStats {
        FleetStats {
            published: self.get(Event::Published),
            dropped_queue_full: self.get(Event::QueueFull),
            dropped_publish: self.get(Event::PublishFailed) + self.get(Event::Unsendable),
            received: self.get(Event::Received),
            own: self.get(Event::Own),
            stale: self.get(Event::Stale),
            expired: self.get(Event::Expired),
            invalid: self.get(Event::Invalid),
            holds: self.get(Event::Held),
            capped: self.get(Event::Capped),
            subscriptions: self.get(Event::Subscribed),
        }
    }
}

fn set_link_gauge(up: bool) {
    #[cfg(feature = "metrics")]
    metrics::gauge!("cutout_fleet_link_up").set(if up { 1.0 } else { 0.0 });
    let _ = up;
}

/// Waits for `d`, or returns false if the fleet stops first.
async fn sleep_unless_stopped(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

/// The publisher: takes messages off the queue and publishes them, one at a time, each
/// within the publish timeout.
async fn publish(
    shared: Arc<Shared>,
    transport: Arc<impl Transport>,
    mut outgoing: mpsc::Receiver<Outgoing>,
    mut stop: watch::Receiver<bool>,
) {
    // Epochs only ever compare with the same origin's: starting at this process's start time
    // in microseconds keeps them increasing across restarts of an instance with a fixed id.
    let mut epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64);
    let ttl = shared.config.ttl;
    loop {
        let message = tokio::select! {
            m = outgoing.recv() => match m {
                Some(m) => m,
                None => return,
            },
            _ = stop.wait_for(|s| *s) => return,
        };
        let waited = message.queued.elapsed();
        if waited >= ttl {
            shared.stats.count(Event::PublishFailed);
            continue;
        }
        epoch += 1;
        let payload = Signal {
            breaker: message.breaker,
            origin: shared.origin,
            epoch,
            hold: message.hold,
            ttl: ttl - waited,
            cause: message.cause,
        }
        .encode();
        let sent = tokio::select! {
            r = tokio::time::timeout(shared.config.network_timeout, transport.publish(payload)) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        match sent {
            Ok(Ok(())) => shared.stats.count(Event::Published),
            Ok(Err(_error)) => {
                shared.stats.count(Event::PublishFailed);
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "cutout_fleet", error = %_error, "fleet publish failed; message dropped");
            }
            Err(_) => {
                shared.stats.count(Event::PublishFailed);
                #[cfg(feature = "tracing")]
                tracing::debug!(target: "cutout_fleet", "fleet publish timed out; message dropped");
            }
        }
    }
}

/// The receiver: subscribes (again, with backoff, whenever the link is lost) and applies
/// the quorum to every message.
async fn receive(
    shared: Arc<Shared>,
    transport: Arc<impl Transport>,
    mut stop: watch::Receiver<bool>,
) {
    let config = &shared.config;
    let mut quorum = Quorum::new(shared.origin, config.quorum, config.window, config.max_hold);
    let mut backoff = config.backoff_min;
    loop {
        let subscribed = tokio::select! {
            r = tokio::time::timeout(config.network_timeout, transport.subscribe()) => r,
            _ = stop.wait_for(|s| *s) => return,
        };
        let wait = match subscribed {
            Ok(Ok(mut stream)) => {
                shared.stats.count(Event::Subscribed);
                shared.set_link(true);
                backoff = config.backoff_min;
                let mut prune = tokio::time::interval(config.window);
                loop {
                    let item = tokio::select! {
                        item = stream.next() => item,
                        _ = prune.tick() => {
                            quorum.prune(Instant::now());
                            continue;
                        }
                        _ = stop.wait_for(|s| *s) => return,
                    };
                    match item {
                        Some(Incoming::Payload(payload)) => {
                            on_payload(&shared, &mut quorum, &payload)
                        }
                        Some(Incoming::Link(up)) => shared.set_link(up),
                        None => break,
                    }
                }
                shared.set_link(false);
                config.backoff_min
            }
            Ok(Err(_)) | Err(_) => {
                shared.set_link(false);
                let wait = backoff;
                backoff = (backoff * 2).min(config.backoff_max);
                wait
            }
        };
        if !sleep_unless_stopped(wait, &mut stop).await {
            return;
        }
    }
}

fn on_payload(shared: &Shared, quorum: &mut Quorum, payload: &[u8]) {
    shared.stats.count(Event::Received);
    let Ok(signal) = Signal::decode(payload) else {
        shared.stats.count(Event::Invalid);
        return;
    };
    let now = Instant::now();
    match quorum.on_signal(&signal, now) {
        Verdict::OwnMessage => shared.stats.count(Event::Own),
        Verdict::Stale => shared.stats.count(Event::Stale),
        Verdict::Expired => shared.stats.count(Event::Expired),
        Verdict::Counted { .. } => {}
        Verdict::Hold { hold, .. } => shared.hold(&signal.breaker, hold, now),
    }
}
