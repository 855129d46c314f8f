//! Grouped reads of the live stock counters: what every product page asks, at one `MGET` for
//! many readers instead of one each.
//!
//! A product page must show the counters as they are when it is asked (the last unit admitted
//! on any instance makes it `SOLD_OUT` at once), so a reader cannot be answered from an earlier
//! read. It can share a *later* one: readers join the open group; one `MGET` per process is in
//! flight at a time, and the group is closed and sent when the previous one has answered
//! (group commit). Every member joined before its group's `MGET` was sent, so each sees every
//! change that completed before it asked, exactly as with its own `MGET`; what it saves is a
//! Redis command (and its round trip of work on both sides) per reader under load. An idle
//! process sends at once: a lone reader waits for nothing but its own read.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};

use tokio::sync::watch;

/// What a group's `MGET` answered: the counters of its ids in order, or why it failed.
type Outcome = Option<Result<Arc<Vec<Option<i64>>>, Arc<redis::RedisError>>>;

/// The group readers are joining, not yet sent.
struct Open {
    ids: Vec<i64>,
    done: watch::Sender<Outcome>,
}

/// The grouping of one process's counter reads (shared by the clones of a `StockStore`).
#[derive(Default)]
pub(super) struct GroupedReads {
    open: Mutex<Option<Open>>,
    /// Held by the group whose `MGET` is in flight: the next group collects readers meanwhile.
    sending: tokio::sync::Mutex<()>,
    /// `MGET`s sent (for tests: fewer than the reads under load).
    sends: AtomicU64,
}

/// Where a reader's counters are in its group's answer.
pub(super) struct Ticket {
    done: watch::Receiver<Outcome>,
    from: usize,
    len: usize,
}

impl GroupedReads {
    /// Joins the open group with `ids` (opening one if none is open); true when this call
    /// opened it, and then the caller must have it sent with [`GroupedReads::send`].
    pub(super) fn join(&self, ids: &[i64]) -> (Ticket, bool) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        match open.as_mut() {
            Some(group) => {
                let from = group.ids.len();
                group.ids.extend_from_slice(ids);
                (Ticket { done: group.done.subscribe(), from, len: ids.len() }, false)
            }
            None => {
                let (done, rx) = watch::channel(None);
                *open = Some(Open { ids: ids.to_vec(), done });
                (Ticket { done: rx, from: 0, len: ids.len() }, true)
            }
        }
    }

    /// Sends the open group once the previous `MGET` has answered, with `mget`, and hands its
    /// answer to every member. Runs on a task of its own, so a member that goes away (a closed
    /// connection) never strands the others.
    pub(super) async fn send<F, Fut>(self: Arc<Self>, mget: F)
    where
        F: FnOnce(Vec<i64>) -> Fut,
        Fut: Future<Output = redis::RedisResult<Vec<Option<i64>>>>,
    {
        let _turn = self.sending.lock().await;
        // Closed from here: later readers open the next group (sent after this one answers).
        let Some(Open { ids, done }) = self.open.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        self.sends.fetch_add(1, Ordering::Relaxed);
        let outcome = mget(ids).await.map(Arc::new).map_err(Arc::new);
        done.send_replace(Some(outcome));
    }
}

impl GroupedReads {
    /// How many `MGET`s this process's grouped reads sent.
    pub(super) fn sends(&self) -> u64 {
        self.sends.load(Ordering::Relaxed)
    }
}

impl Ticket {
    /// This reader's counters from its group's answer (`None`: the group was never answered,
    /// which only a runtime shutting down causes; the caller reads on its own).
    pub(super) async fn counters(mut self) -> Option<Result<Vec<Option<i64>>, Arc<redis::RedisError>>> {
        let outcome = self.done.wait_for(Option::is_some).await.ok()?.clone()?;
        Some(outcome.map(|all| all.get(self.from..self.from + self.len).map(<[_]>::to_vec).unwrap_or_default()))
    }
}
