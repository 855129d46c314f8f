//! Persisting one read batch: a transaction per batch, and for a batch Postgres rejects, a
//! bisection down to the entries at fault.
//!
//! A sink may name its poison entries itself ([`PersistError::Poison`]: an entry that does not
//! decode, a reference it checked). When it cannot, and Postgres refuses the batch's data
//! ([`PersistError::Rejected`]: SQLSTATE class 22 or 23), retrying the same batch would fail
//! forever and block the stream. The batch is split in halves, each persisted in its own
//! transaction, until every refused entry stands alone: `k` bad entries among `n` cost about
//! `2k log2(n)` transactions, and everything else commits. An entry refused on its own is
//! poison, dead-lettered by the consumer after [`MAX_DELIVERIES`](super::MAX_DELIVERIES).
//!
//! "Postgres down" ([`PersistError::Unavailable`]) is never split nor dead-lettered: the round
//! fails, and the same entries are retried after a backoff. Halves committed before the outage
//! are delivered again then; the sinks' idempotence absorbs them.

use std::collections::HashSet;

use anyhow::Context;

use super::Consumer;
use crate::store::redis::streams::{PersistError, StreamEntry, StreamSink};

/// A batch's outcome: the entries committed, and the poison entries with the reason.
pub(super) type Persisted = (Vec<StreamEntry>, Vec<(StreamEntry, String)>);

impl<S: StreamSink> Consumer<S> {
    /// Persists `entries`, bisecting what Postgres rejects (see the module documentation).
    pub(super) async fn persist_all(&mut self, entries: Vec<StreamEntry>) -> anyhow::Result<Persisted> {
        let (mut committed, mut poison) = (Vec::with_capacity(entries.len()), Vec::new());
        // Batches still to persist, the next one last: halves are tried in stream order.
        let mut todo = vec![entries];
        while let Some(mut batch) = todo.pop() {
            if batch.is_empty() {
                continue;
            }
            match self.persist_once(&batch).await {
                Ok(()) => committed.append(&mut batch),
                Err(PersistError::Unavailable(e)) => {
                    self.history = true;
                    return Err(e).context("persisting a batch");
                }
                Err(PersistError::Poison { ids, reason }) => {
                    let ids: HashSet<String> = ids.into_iter().collect();
                    let (bad, good): (Vec<_>, Vec<_>) = batch.into_iter().partition(|e| ids.contains(&e.id));
                    if bad.is_empty() {
                        // The sink named nothing of this batch: retrying the same batch would loop.
                        self.history = true;
                        anyhow::bail!("the sink reported poison ids that are not in the batch: {reason}");
                    }
                    poison.extend(bad.into_iter().map(|e| (e, reason.clone())));
                    todo.push(good);
                }
                Err(PersistError::Rejected(e)) if batch.len() == 1 => {
                    poison.extend(batch.into_iter().map(|entry| (entry, format!("rejected by Postgres: {e}"))));
                }
                Err(PersistError::Rejected(e)) => {
                    tracing::warn!(
                        sink = self.sink.name(),
                        count = batch.len(),
                        error.cause = %e,
                        "Postgres rejected a batch; splitting it to find the entries at fault"
                    );
                    let second = batch.split_off(batch.len() / 2);
                    todo.push(second);
                    todo.push(batch);
                }
            }
        }
        Ok((committed, poison))
    }

    /// One transaction: the sink's writes, then the commit (a deferred constraint refuses there).
    async fn persist_once(&self, batch: &[StreamEntry]) -> Result<(), PersistError> {
        let mut tx = self.db.begin().await?;
        self.sink.persist(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }
}
