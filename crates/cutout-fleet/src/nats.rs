//! The NATS transport.

use std::fmt;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::{Mutex, mpsc};

use crate::transport::{Incoming, Transport, TransportError};

/// NATS: every instance subscribes to one subject and publishes on it.
///
/// The `async-nats` client reconnects on its own and keeps the subscription across
/// reconnects; its connection events become the fleet's link-up state. The first connect
/// fails fast when the server is down, and the fleet tries again with backoff. A publish
/// while the client is disconnected fails (the message is dropped and counted) rather than
/// waiting in the client's buffer to be delivered late.
///
/// ```no_run
/// use cutout_fleet::{Fleet, NatsTransport};
///
/// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
/// let transport = NatsTransport::new("nats://127.0.0.1:4222", "cutout.fleet.orders");
/// let fleet = Fleet::builder().start(transport)?;
/// # drop(fleet); Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "nats")))]
pub struct NatsTransport {
    url: String,
    subject: String,
    client: Mutex<Option<async_nats::Client>>,
    links: Mutex<Option<mpsc::UnboundedReceiver<bool>>>,
}

impl fmt::Debug for NatsTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsTransport")
            .field("url", &self.url)
            .field("subject", &self.subject)
            .finish()
    }
}

impl NatsTransport {
    /// A transport on the server at `url` (`nats://host:port`) and `subject`. Connects
    /// nothing yet.
    pub fn new(url: impl Into<String>, subject: impl Into<String>) -> Self {
        NatsTransport {
            url: url.into(),
            subject: subject.into(),
            client: Mutex::new(None),
            links: Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<async_nats::Client, TransportError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::new()
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            let _ = tx.send(true);
                        }
                        async_nats::Event::Disconnected | async_nats::Event::Closed => {
                            let _ = tx.send(false);
                        }
                        _ => {}
                    }
                }
            })
            .connect(self.url.as_str())
            .await
            .map_err(TransportError::new)?;
        *self.links.lock().await = Some(rx);
        *slot = Some(client.clone());
        Ok(client)
    }
}

impl Transport for NatsTransport {
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Incoming>, TransportError>> {
        Box::pin(async move {
            let client = self.client().await?;
            let subscriber = client
                .subscribe(self.subject.clone())
                .await
                .map_err(TransportError::new)?;
            // The subscription is live once the server has it: a round trip after the SUB,
            // so a message published from elsewhere after this returns is seen.
            round_trip(&client).await?;
            let payloads = subscriber.map(|message| Incoming::Payload(message.payload.to_vec()));
            let links = match self.links.lock().await.take() {
                // The client says "connected" before the server has the subscriptions it
                // sends again; a round trip behind them makes "link up" mean it has them.
                Some(rx) => futures::stream::unfold((rx, client), |(mut rx, client)| async move {
                    let up = rx.recv().await?;
                    if up {
                        // Bounded: the server may go away again before the echo comes back,
                        // and the link's next event must not wait behind it.
                        let _ = tokio::time::timeout(ROUND_TRIP_LIMIT, round_trip(&client)).await;
                    }
                    Some((Incoming::Link(up), (rx, client)))
                })
                .boxed(),
                None => futures::stream::pending().boxed(),
            };
            Ok(futures::stream::select(payloads, links).boxed())
        })
    }

    fn publish(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let client = self.client().await?;
            // The client would keep a message published while it is disconnected and send it
            // after it reconnects, however late: a trip signal that old must be dropped, not
            // delivered (its time to live counts from when a receiver gets it).
            if client.connection_state() != async_nats::connection::State::Connected {
                return Err(TransportError::new("nats client is not connected"));
            }
            client
                .publish(self.subject.clone(), payload.into())
                .await
                .map_err(TransportError::new)?;
            client.flush().await.map_err(TransportError::new)
        })
    }
}

/// How long the round trip after a reconnect may take before the link is reported up anyway.
const ROUND_TRIP_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Returns once the server has processed everything this client sent before: a message to
/// a private inbox, published after those operations on the same connection, has come back.
/// (`Client::flush` only writes the client's buffer to the socket: on a busy machine the
/// server may read another client's publish before this client's subscription.)
async fn round_trip(client: &async_nats::Client) -> Result<(), TransportError> {
    let inbox = client.new_inbox();
    let mut echo = client
        .subscribe(inbox.clone())
        .await
        .map_err(TransportError::new)?;
    client
        .publish(inbox, Vec::new().into())
        .await
        .map_err(TransportError::new)?;
    client.flush().await.map_err(TransportError::new)?;
    match echo.next().await {
        Some(_) => Ok(()),
        None => Err(TransportError::new(
            "nats subscription closed before its round trip",
        )),
    }
}
