//! How signals travel: the [`Transport`] trait and the in-memory transport for tests.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::{broadcast, watch};

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A payload from the channel (perhaps our own, echoed back).
    Payload(Vec<u8>),
    /// The link went down (`false`) or came back (`true`) while the subscription lives, for
    /// clients that reconnect on their own (NATS).
    Link(bool),
}

/// A transport error: the server is unreachable, refused, or dropped the link.
#[derive(Debug)]
pub struct TransportError {
    message: String,
}

impl TransportError {
    /// An error with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        TransportError {
            message: message.to_string(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fleet transport: {}", self.message)
    }
}

impl std::error::Error for TransportError {}

/// A pub/sub channel between the instances of a fleet.
///
/// The fleet's background tasks call it; the call path never does. A subscription is a
/// stream that ends when the link is lost (the fleet then subscribes again, with backoff);
/// a publish that fails or takes longer than the fleet's publish timeout drops its message.
pub trait Transport: Send + Sync + 'static {
    /// Connects and subscribes to the fleet's channel.
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Incoming>, TransportError>>;

    /// Publishes one payload on the fleet's channel.
    fn publish(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>>;
}

/// An in-process bus: every [`MemoryTransport`] made from it (one per simulated instance)
/// sees every payload published on any of them, including its own. The bus can be taken
/// down and brought back, and a transport can be made to hang on publish, to test how a
/// fleet behaves when its server fails.
///
/// ```
/// use cutout_fleet::MemoryBus;
///
/// let bus = MemoryBus::new();
/// let (a, b) = (bus.transport(), bus.transport());
/// bus.set_down(true); // subscriptions end, subscribe and publish fail
/// bus.set_down(false);
/// # drop((a, b));
/// ```
#[derive(Debug, Clone)]
pub struct MemoryBus {
    inner: Arc<BusInner>,
}

#[derive(Debug)]
struct BusInner {
    sender: broadcast::Sender<Vec<u8>>,
    down: watch::Sender<bool>,
}

impl Default for MemoryBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryBus {
    /// A bus that is up.
    pub fn new() -> Self {
        let (sender, _) = broadcast::channel(1024);
        let (down, _) = watch::channel(false);
        MemoryBus {
            inner: Arc::new(BusInner { sender, down }),
        }
    }

    /// A transport on this bus.
    pub fn transport(&self) -> MemoryTransport {
        MemoryTransport {
            bus: self.clone(),
            hang_on_publish: false,
        }
    }

    /// A transport on this bus whose publish never returns (a server that accepts the
    /// connection and then stops answering). It still receives.
    pub fn hanging_transport(&self) -> MemoryTransport {
        MemoryTransport {
            bus: self.clone(),
            hang_on_publish: true,
        }
    }

    /// Takes the bus down (`true`: live subscriptions end, subscribe and publish fail) or
    /// brings it back.
    pub fn set_down(&self, down: bool) {
        self.inner.down.send_replace(down);
    }

    fn is_down(&self) -> bool {
        *self.inner.down.borrow()
    }
}

/// One instance's end of a [`MemoryBus`].
#[derive(Debug, Clone)]
pub struct MemoryTransport {
    bus: MemoryBus,
    hang_on_publish: bool,
}

impl Transport for MemoryTransport {
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Incoming>, TransportError>> {
        Box::pin(async move {
            if self.bus.is_down() {
                return Err(TransportError::new("memory bus is down"));
            }
            let rx = self.bus.inner.sender.subscribe();
            let down = self.bus.inner.down.subscribe();
            let stream = futures::stream::unfold((rx, down), |(mut rx, mut down)| async move {
                loop {
                    if *down.borrow_and_update() {
                        return None;
                    }
                    tokio::select! {
                        message = rx.recv() => match message {
                            Ok(payload) => return Some((Incoming::Payload(payload), (rx, down))),
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return None,
                        },
                        changed = down.changed() => if changed.is_err() {
                            return None;
                        },
                    }
                }
            });
            Ok(Box::pin(stream) as BoxStream<'static, Incoming>)
        })
    }

    fn publish(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            if self.hang_on_publish {
                futures::future::pending::<()>().await;
            }
            if self.bus.is_down() {
                return Err(TransportError::new("memory bus is down"));
            }
            // No subscriber is not an error: nobody listens yet.
            let _ = self.bus.inner.sender.send(payload);
            Ok(())
        })
    }
}
