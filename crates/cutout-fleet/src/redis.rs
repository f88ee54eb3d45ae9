//! The Redis pub/sub transport.

use std::fmt;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use redis::aio::MultiplexedConnection;
use tokio::sync::Mutex;

use crate::transport::{Incoming, Transport, TransportError};

/// Redis pub/sub: every instance subscribes to one channel and publishes on it.
///
/// The subscription is a dedicated connection; when Redis goes away it ends, and the fleet
/// subscribes again with backoff. Publishing uses one multiplexed connection, made again
/// after an error. Nothing is stored in Redis (`PUBLISH` only), so persistence is not needed.
///
/// ```no_run
/// use cutout_fleet::{Fleet, RedisTransport};
///
/// # async fn start() -> Result<(), Box<dyn std::error::Error>> {
/// let transport = RedisTransport::new("redis://127.0.0.1:6379/", "cutout-fleet:orders")?;
/// let fleet = Fleet::builder().start(transport)?;
/// # drop(fleet); Ok(()) }
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisTransport {
    client: redis::Client,
    channel: String,
    publisher: Mutex<Option<MultiplexedConnection>>,
}

impl fmt::Debug for RedisTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTransport")
            .field("server", &self.client.get_connection_info().addr())
            .field("channel", &self.channel)
            .finish()
    }
}

impl RedisTransport {
    /// A transport on the server at `url` (`redis://host:port/`) and `channel`. Connects
    /// nothing yet; a bad URL is an error.
    pub fn new(url: &str, channel: impl Into<String>) -> Result<Self, TransportError> {
        Ok(RedisTransport {
            client: redis::Client::open(url).map_err(TransportError::new)?,
            channel: channel.into(),
            publisher: Mutex::new(None),
        })
    }
}

impl Transport for RedisTransport {
    fn subscribe(&self) -> BoxFuture<'_, Result<BoxStream<'static, Incoming>, TransportError>> {
        Box::pin(async move {
            let mut pubsub = self
                .client
                .get_async_pubsub()
                .await
                .map_err(TransportError::new)?;
            pubsub
                .subscribe(&self.channel)
                .await
                .map_err(TransportError::new)?;
            let stream = pubsub
                .into_on_message()
                .map(|message| Incoming::Payload(message.get_payload_bytes().to_vec()));
            Ok(stream.boxed())
        })
    }

    fn publish(&self, payload: Vec<u8>) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            let mut slot = self.publisher.lock().await;
            let mut connection = match slot.as_ref() {
                Some(c) => c.clone(),
                None => {
                    let c = self
                        .client
                        .get_multiplexed_async_connection()
                        .await
                        .map_err(TransportError::new)?;
                    *slot = Some(c.clone());
                    c
                }
            };
            let sent = redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(payload)
                .query_async::<i64>(&mut connection)
                .await;
            if let Err(error) = sent {
                *slot = None;
                return Err(TransportError::new(error));
            }
            Ok(())
        })
    }
}
