//! The durable order queue: an embedded [`redb`] database in one file.
//!
//! Orders the payment service could not take are pushed here and answered `202 pending`;
//! the order service's worker pays them later, with the idempotency key they were queued
//! with. A push is one redb write transaction, committed durably (fsync) before the order
//! service answers, so a queued order survives a crash or a restart of the process. The
//! worker completes the orders it paid in batches, one durable transaction per batch.
//!
//! | table | key | value |
//! |---|---|---|
//! | `pending` | sequence number (oldest first) | the [`QueuedOrder`] as JSON |
//! | `pending_by_order` | order id | sequence number |
//! | `done` | order id | the payment id |
//! | `refused` | order id | why payment refused it for good (a `4xx`) |
//! | `paid` | order id | the payment id of an order paid while the customer waited (not durable: see [`Queue::record_paid`]) |
//! | `meta` | `"next_seq"` | the next sequence number |
//!
//! Completing an order moves it from `pending` to `done`. If the process
//! dies after the payment service charged but before that commit, the order is still
//! pending and is paid again with the **same** idempotency key: the payment service answers
//! with the original payment and charges nothing. That is what makes the drain exactly once.

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

const PENDING: TableDefinition<'_, u64, &str> = TableDefinition::new("pending");
const PENDING_BY_ORDER: TableDefinition<'_, &str, u64> = TableDefinition::new("pending_by_order");
const DONE: TableDefinition<'_, &str, &str> = TableDefinition::new("done");
const META: TableDefinition<'_, &str, u64> = TableDefinition::new("meta");
const REFUSED: TableDefinition<'_, &str, &str> = TableDefinition::new("refused");
const PAID: TableDefinition<'_, &str, &str> = TableDefinition::new("paid");

/// An order waiting for payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedOrder {
    /// Its place in the queue (oldest first).
    pub seq: u64,
    /// The order id.
    pub order_id: String,
    /// The idempotency key of its first payment attempt; every retry uses it.
    pub idempotency_key: String,
    /// The amount, in cents.
    pub amount_cents: u64,
}

/// A paid order, as the queue remembers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// The payment's id.
    pub payment_id: String,
}

/// What [`Queue::push`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// Queued, with this sequence number.
    Added(u64),
    /// The order was already waiting; nothing changed.
    AlreadyPending(u64),
    /// The order was already paid; nothing changed.
    AlreadyDone(Completion),
}

/// Where an order stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderStatus {
    /// Waiting in the queue.
    Pending(QueuedOrder),
    /// Paid.
    Done(Completion),
}

/// A storage error.
#[derive(Debug)]
pub struct QueueError(Box<dyn Error + Send + Sync>);

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "order queue: {}", self.0)
    }
}

impl Error for QueueError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.0)
    }
}

macro_rules! from_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for QueueError {
            fn from(e: $t) -> Self {
                QueueError(Box::new(e))
            }
        }
    )*};
}
from_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    serde_json::Error
);

/// The durable queue. One process opens a file at a time (redb locks it).
///
/// ```
/// use outage_drill::queue::{Pushed, Queue};
///
/// let dir = tempfile::tempdir()?;
/// let queue = Queue::open(dir.path().join("orders.redb"))?;
/// let Pushed::Added(seq) = queue.push("o-1", "order-o-1", 1999)? else { unreachable!() };
/// assert_eq!(queue.pending_len()?, 1);
/// assert_eq!(queue.complete(&[(seq, "o-1", "pay-1")])?, 1);
/// assert_eq!(queue.pending_len()?, 0);
/// drop(queue);
///
/// // Reopened: the completion is still there.
/// let queue = Queue::open(dir.path().join("orders.redb"))?;
/// assert_eq!(queue.completed()?, [("o-1".to_owned(), "pay-1".to_owned())]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Queue {
    db: Database,
    path: PathBuf,
}

impl Queue {
    /// Opens the queue in `path`, creating the file and its tables if needed.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened, is not a redb file, or is open elsewhere.
    pub fn open(path: impl AsRef<Path>) -> Result<Queue, QueueError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path)?;
        let tx = db.begin_write()?;
        {
            tx.open_table(PENDING)?;
            tx.open_table(PENDING_BY_ORDER)?;
            tx.open_table(DONE)?;
            tx.open_table(META)?;
            tx.open_table(REFUSED)?;
            tx.open_table(PAID)?;
        }
        tx.commit()?;
        Ok(Queue { db, path })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Queues an order, unless it is already queued or paid.
    ///
    /// # Errors
    ///
    /// On a storage error; the order is then not queued.
    pub fn push(
        &self,
        order_id: &str,
        idempotency_key: &str,
        amount_cents: u64,
    ) -> Result<Pushed, QueueError> {
        let tx = self.db.begin_write()?;
        let pushed = {
            let done = tx.open_table(DONE)?;
            let mut by_order = tx.open_table(PENDING_BY_ORDER)?;
            if let Some(payment_id) = done.get(order_id)? {
                Pushed::AlreadyDone(Completion {
                    payment_id: payment_id.value().to_owned(),
                })
            } else if let Some(seq) = by_order.get(order_id)?.map(|g| g.value()) {
                Pushed::AlreadyPending(seq)
            } else {
                let mut meta = tx.open_table(META)?;
                let seq = meta.get("next_seq")?.map_or(0, |g| g.value());
                meta.insert("next_seq", seq + 1)?;
                let order = QueuedOrder {
                    seq,
                    order_id: order_id.to_owned(),
                    idempotency_key: idempotency_key.to_owned(),
                    amount_cents,
                };
                tx.open_table(PENDING)?
                    .insert(seq, serde_json::to_string(&order)?.as_str())?;
                by_order.insert(order_id, seq)?;
                Pushed::Added(seq)
            }
        };
        if matches!(pushed, Pushed::Added(_)) {
            tx.commit()?;
        } else {
            tx.abort()?;
        }
        Ok(pushed)
    }

    /// Up to `limit` pending orders, oldest first.
    ///
    /// # Errors
    ///
    /// On a storage error.
    pub fn oldest(&self, limit: usize) -> Result<Vec<QueuedOrder>, QueueError> {
        let tx = self.db.begin_read()?;
        let pending = tx.open_table(PENDING)?;
        let mut out = Vec::new();
        for entry in pending.iter()?.take(limit) {
            let (_, order) = entry?;
            out.push(serde_json::from_str(order.value())?);
        }
        Ok(out)
    }

    /// Moves paid orders `(seq, order_id, payment_id)` from `pending` to `done`, in one
    /// durable transaction. Returns how many were pending; one that was not changes nothing.
    ///
    /// # Errors
    ///
    /// On a storage error; the orders then stay pending (and are paid again, with their
    /// keys, which the payment service answers with the original payments).
    pub fn complete(&self, paid: &[(u64, &str, &str)]) -> Result<usize, QueueError> {
        let tx = self.db.begin_write()?;
        let mut moved = 0;
        {
            let mut pending = tx.open_table(PENDING)?;
            let mut by_order = tx.open_table(PENDING_BY_ORDER)?;
            let mut done = tx.open_table(DONE)?;
            for &(seq, order_id, payment_id) in paid {
                if pending.remove(seq)?.is_some() {
                    by_order.remove(order_id)?;
                    done.insert(order_id, payment_id)?;
                    moved += 1;
                }
            }
        }
        if moved > 0 {
            tx.commit()?;
        } else {
            tx.abort()?;
        }
        Ok(moved)
    }

    /// Records an order paid while the customer waited (never queued) in `paid`, for
    /// [`paid`](Self::paid). Committed without waiting for the disk
    /// ([`redb::Durability::Eventual`]): the payment service's ledger is the record, and an
    /// order whose record a crash lost is paid again with its key, which payment answers with
    /// the original payment. Returns false when the order was recorded before.
    ///
    /// # Errors
    ///
    /// On a storage error.
    pub fn record_paid(&self, order_id: &str, payment_id: &str) -> Result<bool, QueueError> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(redb::Durability::Eventual);
        let added = {
            let mut paid = tx.open_table(PAID)?;
            let known = paid.get(order_id)?.is_some();
            if !known {
                paid.insert(order_id, payment_id)?;
            }
            !known
        };
        if added {
            tx.commit()?;
        } else {
            tx.abort()?;
        }
        Ok(added)
    }

    /// The payment of an order paid while the customer waited, if
    /// [`record_paid`](Self::record_paid) recorded it.
    ///
    /// # Errors
    ///
    /// On a storage error.
    pub fn paid(&self, order_id: &str) -> Result<Option<Completion>, QueueError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(PAID)?.get(order_id)?.map(|p| Completion {
            payment_id: p.value().to_owned(),
        }))
    }

    /// Moves orders `(seq, order_id, reason)` that payment refused for good (a `4xx`: a
    /// retry would be refused again) from `pending` to `refused`, in one durable
    /// transaction, so that they do not block the queue. Returns how many were pending.
    ///
    /// # Errors
    ///
    /// On a storage error; the orders then stay pending.
    pub fn refuse(&self, refused: &[(u64, &str, &str)]) -> Result<usize, QueueError> {
        let tx = self.db.begin_write()?;
        let mut moved = 0;
        {
            let mut pending = tx.open_table(PENDING)?;
            let mut by_order = tx.open_table(PENDING_BY_ORDER)?;
            let mut table = tx.open_table(REFUSED)?;
            for &(seq, order_id, reason) in refused {
                if pending.remove(seq)?.is_some() {
                    by_order.remove(order_id)?;
                    table.insert(order_id, reason)?;
                    moved += 1;
                }
            }
        }
        if moved > 0 {
            tx.commit()?;
        } else {
            tx.abort()?;
        }
        Ok(moved)
    }

    /// Every order payment refused for good: `(order id, reason)`, by order id.
    ///
    /// # Errors
    ///
    /// On a storage error.
    pub fn refused(&self) -> Result<Vec<(String, String)>, QueueError> {
        let tx = self.db.begin_read()?;
        let table = tx.open_table(REFUSED)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            let (order_id, reason) = entry?;
            out.push((order_id.value().to_owned(), reason.value().to_owned()));
        }
        Ok(out)
    }

    /// Where `order_id` stands, if the order service knows it.
    ///
    /// # Errors
    ///
    /// On a storage error.
    pub fn status(&self, order_id: &str) -> Result<Option<OrderStatus>, QueueError> {
        let tx = self.db.begin_read()?;
        if let Some(payment_id) = tx.open_table(DONE)?.get(order_id)? {
            return Ok(Some(OrderStatus::Done(Completion {
                payment_id: payment_id.value().to_owned(),
            })));
        }
        let Some(seq) = tx
            .open_table(PENDING_BY_ORDER)?
            .get(order_id)?
            .map(|g| g.value())
        else {
            return Ok(None);
        };
        match tx.open_table(PENDING)?.get(seq)? {
            Some(order) => Ok(Some(OrderStatus::Pending(serde_json::from_str(
                order.value(),
            )?))),
            None => Ok(None),
        }
    }

    /// How many orders are waiting.
    ///
    /// # Errors
    ///
    /// On a storage error.
    pub fn pending_len(&self) -> Result<u64, QueueError> {
        let tx = self.db.begin_read()?;
        Ok(tx.open_table(PENDING)?.len()?)
    }

    /// Every order paid from the queue: `(order id, payment id)`, by order id.
    ///
    /// # Errors
    ///
    /// On a storage error.
    pub fn completed(&self) -> Result<Vec<(String, String)>, QueueError> {
        let tx = self.db.begin_read()?;
        let done = tx.open_table(DONE)?;
        let mut out = Vec::new();
        for entry in done.iter()? {
            let (order_id, payment_id) = entry?;
            out.push((order_id.value().to_owned(), payment_id.value().to_owned()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_is_idempotent_and_survives_reopen() -> Result<(), Box<dyn Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("q.redb");
        let queue = Queue::open(&path)?;
        assert_eq!(queue.push("o-1", "k-1", 10)?, Pushed::Added(0));
        assert_eq!(queue.push("o-2", "k-2", 20)?, Pushed::Added(1));
        assert_eq!(queue.push("o-1", "k-other", 10)?, Pushed::AlreadyPending(0));
        drop(queue);

        let queue = Queue::open(&path)?;
        let oldest = queue.oldest(10)?;
        assert_eq!(
            oldest,
            vec![
                QueuedOrder {
                    seq: 0,
                    order_id: "o-1".into(),
                    idempotency_key: "k-1".into(),
                    amount_cents: 10
                },
                QueuedOrder {
                    seq: 1,
                    order_id: "o-2".into(),
                    idempotency_key: "k-2".into(),
                    amount_cents: 20
                },
            ]
        );
        assert_eq!(queue.complete(&[(0, "o-1", "pay-1")])?, 1);
        assert_eq!(
            queue.complete(&[(0, "o-1", "pay-1")])?,
            0,
            "completed twice"
        );
        let done = Completion {
            payment_id: "pay-1".into(),
        };
        assert_eq!(
            queue.push("o-1", "k-1", 10)?,
            Pushed::AlreadyDone(done.clone())
        );
        assert_eq!(queue.status("o-1")?, Some(OrderStatus::Done(done)));
        assert!(matches!(queue.status("o-2")?, Some(OrderStatus::Pending(o)) if o.seq == 1));
        assert_eq!(queue.status("o-3")?, None);
        assert_eq!(queue.pending_len()?, 1);
        // Sequence numbers keep growing after a drain.
        assert_eq!(queue.push("o-3", "k-3", 30)?, Pushed::Added(2));
        assert_eq!(
            queue.complete(&[(1, "o-2", "pay-2"), (2, "o-3", "pay-3")])?,
            2
        );
        assert_eq!(
            queue.completed()?,
            [
                ("o-1".to_owned(), "pay-1".to_owned()),
                ("o-2".to_owned(), "pay-2".to_owned()),
                ("o-3".to_owned(), "pay-3".to_owned())
            ]
        );
        assert_eq!(queue.pending_len()?, 0);

        // An order paid at once is recorded once, apart from the queue.
        assert_eq!(queue.paid("o-5")?, None);
        assert!(queue.record_paid("o-5", "pay-5")?);
        assert!(!queue.record_paid("o-5", "pay-other")?);
        assert_eq!(
            queue.paid("o-5")?,
            Some(Completion {
                payment_id: "pay-5".into()
            })
        );
        assert_eq!(queue.status("o-5")?, None);
        assert_eq!(queue.push("o-8", "k-8", 80)?, Pushed::Added(3));
        assert_eq!(queue.complete(&[(3, "o-8", "pay-8")])?, 1);

        // A refused order leaves the queue for the `refused` table, once.
        assert_eq!(queue.push("o-9", "k-9", 90)?, Pushed::Added(4));
        assert_eq!(queue.refuse(&[(4, "o-9", "payment_refused_409")])?, 1);
        assert_eq!(queue.refuse(&[(4, "o-9", "payment_refused_409")])?, 0);
        assert_eq!(queue.pending_len()?, 0);
        assert_eq!(
            queue.refused()?,
            [("o-9".to_owned(), "payment_refused_409".to_owned())]
        );
        Ok(())
    }

    #[test]
    fn a_file_open_elsewhere_is_an_error() -> Result<(), Box<dyn Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("q.redb");
        let _queue = Queue::open(&path)?;
        let err = Queue::open(&path).expect_err("redb locks the file");
        assert!(err.to_string().starts_with("order queue: "), "{err}");
        Ok(())
    }
}
