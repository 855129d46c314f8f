//! Group commit of V2 payments: payments that arrive together are paid in one Postgres
//! transaction, one savepoint each, with one COMMIT (one WAL flush) for all of them.
//!
//! Why: a payment's own work is a handful of short statements, and on this kind of disk the
//! COMMIT's flush is what it waits for (BENCHMARKS.md sections 8 and 11: `LWLock:WALWrite`,
//! `IO:WALSync`). A few workers each take whatever payments are queued (up to [`MAX_BATCH`]), so
//! an idle system adds no wait: a lone payment is a batch of one.
//!
//! The payments without a coupon or `Idempotency-Key` (nearly all of a rush) are paid set-wise:
//! refusals decided in Rust from the rows read under the batch's locks, the accepted ones written
//! with a few multi-row statements (`store::pg::plain_payments`). The others each run the lone
//! payment's statements under a savepoint of their own.
//!
//! What a caller is promised, exactly as when it paid alone:
//! - it is answered only after the batch's COMMIT returned (nothing acknowledged can be lost),
//!   and, when paid, after the order was marked paid in Redis (as a lone payment did);
//! - a refused payment is rolled back to its savepoint, alone, with the answer it would have
//!   had alone; its idempotent answer, like an accepted one's, is recorded inside its savepoint;
//! - a failed COMMIT (or any failure outside a savepoint) answers every member with the fault,
//!   and nothing of the batch stays;
//! - no deadlock: the batch persists the V2 orders Postgres lacks first (id order, no lock held,
//!   as a consumer batch does), then locks every order and every wallet in id order before any
//!   payment runs (`store::pg::payment_batch`).
//!
//! V1 orders (`reservation = 'db'`) lock shared option rows when paid, in an order a batch could
//! not keep; they are handed back and paid alone, as before.

use std::{
    collections::HashMap,
    future::Future,
    sync::{Arc, OnceLock},
};

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::{idempotency::Receipt, orders::OrderError};
use crate::{
    admission::orders::settle,
    store::{
        Fault,
        pg::{
            admitted_orders,
            orders::Reservation,
            payment::{self, Paid},
            payment_batch as batch,
            plain_payments::{self, Plain},
        },
        redis::{stock::StockStore, streams::is_rejection},
    },
};

/// Workers, each with one batch (one transaction, one pooled connection) at a time.
pub const WORKERS: usize = 8;
/// Most payments in one batch: bounds how long the batch's first payment waits for its last.
pub const MAX_BATCH: usize = 32;

/// One payment asked of the batches.
pub struct Ask {
    /// The order to pay.
    pub order_id: Uuid,
    /// Its owner (anyone else's order is not found).
    pub user_id: i64,
    /// The held coupon to use, if any.
    pub user_coupon_id: Option<Uuid>,
    /// The payment's time.
    pub now: DateTime<Utc>,
    /// The idempotent answer, recorded in the payment's savepoint.
    pub receipt: Receipt<'static, Paid>,
}

/// What a batch did with one payment.
pub enum Answer {
    /// Paid and committed, and then marked paid in Redis (`settle::confirmed`).
    Paid(Paid),
    /// Refused (or failed) and rolled back alone; whatever else the batch did is committed.
    Refused(OrderError),
    /// A V1 order: to be paid alone, with its receipt handed back.
    Alone(Receipt<'static, Paid>),
}

struct Job {
    ask: Ask,
    reply: oneshot::Sender<Answer>,
}

/// The queue of payments and its workers (which stop once every handle is dropped).
#[derive(Clone)]
pub struct PaymentBatches {
    queue: mpsc::Sender<Job>,
    workers: Arc<Workers>,
}

/// What the workers need, kept until the first payment starts them: a process that never pays
/// (a consumer-only instance, most test apps) runs no idle worker.
struct Workers {
    db: PgPool,
    stock: Arc<StockStore>,
    jobs: Arc<Mutex<mpsc::Receiver<Job>>>,
    started: OnceLock<()>,
}

impl PaymentBatches {
    /// The queue of [`WORKERS`] workers paying through `db`, persisting missing V2 orders from
    /// `stock`; they start with the first payment.
    pub fn start(db: PgPool, stock: StockStore) -> PaymentBatches {
        metrics::describe_histogram!(BATCH_SIZE, metrics::Unit::Count, "Payments per group commit (one transaction)");
        let (queue, jobs) = mpsc::channel(4096);
        let workers =
            Workers { db, stock: Arc::new(stock), jobs: Arc::new(Mutex::new(jobs)), started: OnceLock::new() };
        PaymentBatches { queue, workers: Arc::new(workers) }
    }

    /// Pays `ask` in the next batch; answered after that batch's COMMIT.
    pub async fn pay(&self, ask: Ask) -> Result<Answer, Fault> {
        let w = &self.workers;
        w.started.get_or_init(|| {
            for _ in 0..WORKERS {
                tokio::spawn(work(w.db.clone(), w.stock.clone(), w.jobs.clone()));
            }
        });
        let (reply, answer) = oneshot::channel();
        let stopped = || Fault::invariant("the payment workers have stopped");
        self.queue.send(Job { ask, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }
}

async fn work(db: PgPool, stock: Arc<StockStore>, jobs: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        {
            // One worker waits for the queue at a time; it takes everything queued (up to the cap)
            // and leaves the queue to the next idle worker.
            let mut jobs = jobs.lock().await;
            if jobs.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        metrics::histogram!(BATCH_SIZE).record(batch.len() as f64);
        let (asks, replies): (Vec<Ask>, Vec<_>) = batch.into_iter().map(|j| (j.ask, j.reply)).unzip();
        match boxed(run(&db, &stock, asks)).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let Answer::Paid(paid) = answer else {
                        let _ = reply.send(answer);
                        continue;
                    };
                    // The Redis step after the commit, here rather than in the request: it happens
                    // even when the caller has gone (timed out, disconnected) meanwhile. Off the
                    // worker, which goes on to the next batch.
                    let stock = stock.clone();
                    tokio::spawn(async move {
                        boxed(settle::confirmed(&stock, &paid.order.held())).await;
                        let _ = reply.send(Answer::Paid(paid));
                    });
                }
            }
            Err(fault) => {
                tracing::warn!(error.cause = %fault, batch.size = replies.len(), "a batch of payments failed; none of it was committed");
                let fault = Arc::new(fault);
                for reply in replies {
                    let _ = reply.send(Answer::Refused(OrderError::Fault(Fault::Shared(fault.clone()))));
                }
            }
        }
    }
}

/// A future as a boxed `dyn Future + Send`: the compiler then proves `Send` where the future is
/// made, with its concrete lifetimes, instead of for every lifetime where a spawned task holds it
/// ("implementation of `Send` is not general enough").
fn boxed<'a, T>(f: impl Future<Output = T> + Send + 'a) -> BoxFuture<'a, T> {
    Box::pin(f)
}

/// `payment_batch_size` histogram: payments per group commit.
pub const BATCH_SIZE: &str = "payment_batch_size";

/// One batch: persist what is missing, lock, pay (set-wise those without a coupon or key, then
/// each other one under its savepoint), COMMIT. An `Err` is a failure outside every savepoint:
/// the transaction is dropped (rolled back) and every member is answered it.
async fn run(db: &PgPool, stock: &StockStore, asks: Vec<Ask>) -> Result<Vec<Answer>, Fault> {
    let mut order_ids: Vec<Uuid> = asks.iter().map(|a| a.order_id).collect();
    order_ids.sort_unstable();
    order_ids.dedup();
    let mut user_ids: Vec<i64> = asks.iter().map(|a| a.user_id).collect();
    user_ids.sort_unstable();
    user_ids.dedup();

    let mut tx = boxed(db.begin()).await?;
    // A V2 order the stream consumer has not persisted yet is written here from its Redis hash,
    // idempotently with the consumer, and committed with its payment (one commit for both).
    let known = boxed(batch::known(&mut tx, &order_ids)).await?;
    let missing: Vec<Uuid> = order_ids.iter().copied().filter(|id| !known.contains(id)).collect();
    let unpersisted = boxed(persist_missing(&mut tx, stock, &missing)).await?;
    let mut locked = boxed(batch::lock_all(&mut tx, &order_ids, &user_ids)).await?;

    // Who goes which way; answers are filled in by position.
    let mut answers: Vec<Option<Answer>> = Vec::with_capacity(asks.len());
    let (mut plain, mut plain_at, mut single) = (Vec::new(), Vec::new(), Vec::new());
    for (i, ask) in asks.into_iter().enumerate() {
        if locked.reservation(ask.order_id) == Some(Reservation::Db) {
            answers.push(Some(Answer::Alone(ask.receipt)));
        } else if let Some(reason) = unpersisted.get(&ask.order_id) {
            // What this payment alone would have answered: its order's persist failed.
            answers.push(Some(Answer::Refused(OrderError::Fault(Fault::invariant(reason.clone())))));
        } else if ask.user_coupon_id.is_none() && !ask.receipt.is_active() {
            answers.push(None);
            plain.push(Plain { order_id: ask.order_id, user_id: ask.user_id, now: ask.now });
            plain_at.push(i);
        } else {
            answers.push(None);
            single.push((i, ask));
        }
    }
    if !plain.is_empty() {
        let paid = boxed(plain_payments::pay(&mut tx, &plain, &mut locked)).await?;
        for (i, paid) in plain_at.into_iter().zip(paid) {
            answers[i] = Some(answer(paid.map_err(OrderError::from)));
        }
    }
    for (i, ask) in single {
        // A savepoint of its own (sqlx's nested transaction): released when kept, rolled back alone.
        let mut sp = boxed(Connection::begin(&mut *tx)).await?;
        let paid = match boxed(payment::pay(&mut sp, ask.order_id, ask.user_id, ask.user_coupon_id, ask.now)).await {
            Ok(paid) => boxed(ask.receipt.record(&mut sp, &paid)).await.map(|()| paid).map_err(OrderError::from),
            Err(e) => Err(OrderError::from(e)),
        };
        match paid {
            Ok(_) => boxed(sp.commit()).await?,
            Err(_) => boxed(sp.rollback()).await?,
        }
        answers[i] = Some(answer(paid));
    }
    boxed(tx.commit()).await?;
    Ok(answers.into_iter().map(|a| a.expect("every payment of the batch answered")).collect())
}

fn answer(paid: Result<Paid, OrderError>) -> Answer {
    match paid {
        Ok(paid) => Answer::Paid(paid),
        Err(e) => Answer::Refused(e),
    }
}

/// Persists the V2 orders of `missing` that Redis holds (one multi-row insert, in id order,
/// before the batch locks anything). Should Postgres refuse one (a constraint: Redis admitted
/// what Postgres cannot hold, see reconciliation), each is tried under a savepoint of its own, so
/// only the payments of the refused ones fail; returns those, with the reason.
async fn persist_missing(
    tx: &mut PgConnection,
    stock: &StockStore,
    missing: &[Uuid],
) -> Result<HashMap<Uuid, String>, Fault> {
    let mut refused = HashMap::new();
    if missing.is_empty() {
        return Ok(refused);
    }
    let admissions = settle::admissions_of(stock, missing).await?;
    let mut all = tx.begin().await?;
    match admitted_orders::persist(&mut all, &admissions).await {
        Ok(_) => all.commit().await?,
        Err(e) if is_rejection(&e) => {
            all.rollback().await?;
            for admission in &admissions {
                let mut one = tx.begin().await?;
                match admitted_orders::persist(&mut one, std::slice::from_ref(admission)).await {
                    Ok(_) => one.commit().await?,
                    Err(e) if is_rejection(&e) => {
                        one.rollback().await?;
                        refused.insert(admission.order_id, format!("persisting order {}: {e}", admission.order_id));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Err(e) => return Err(e.into()),
    }
    Ok(refused)
}
