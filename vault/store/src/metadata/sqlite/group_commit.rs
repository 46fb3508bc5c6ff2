//! Group commit of segment rows for the SQLite store: a row that arrives while another
//! transaction commits waits in a queue; whoever takes the writer next commits every queued
//! row in one transaction, so one WAL fsync (synchronous=FULL) covers them all. Each row sits
//! in its own savepoint, so a duplicate key fails only that row.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;

use rusqlite::{params, Connection, TransactionBehavior};

use super::rows::{set_terms, SEGMENT_COLUMNS};
use crate::metadata::lifecycle::RetentionTerms;
use crate::metadata::{SegmentRecord, StoreError};

/// A queued row, its retention terms if known, and where its result goes.
type PendingRow = (
    SegmentRecord,
    Option<RetentionTerms>,
    SyncSender<Result<(), StoreError>>,
);

/// Rows waiting for the next commit.
#[derive(Default)]
pub(super) struct GroupCommit {
    pending: Mutex<Vec<PendingRow>>,
}

impl GroupCommit {
    /// Queues a row; its result arrives on the receiver once some commit included it.
    pub(super) fn enqueue(
        &self,
        row: SegmentRecord,
        terms: Option<RetentionTerms>,
    ) -> Receiver<Result<(), StoreError>> {
        let (reply, result) = sync_channel(1);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((row, terms, reply));
        result
    }

    /// Commits every queued row in one transaction; the caller holds the writer connection.
    pub(super) fn commit(&self, conn: &mut Connection) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        if batch.is_empty() {
            return;
        }
        let outcome = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut results = Vec::with_capacity(batch.len());
            for (segment, terms, _) in &batch {
                tx.execute_batch("SAVEPOINT row")?;
                let inserted = insert_segment_row(&tx, segment, terms.as_ref());
                tx.execute_batch(if inserted.is_ok() {
                    "RELEASE row"
                } else {
                    "ROLLBACK TO row; RELEASE row"
                })?;
                results.push(inserted);
            }
            tx.commit()?;
            Ok::<_, rusqlite::Error>(results)
        })();
        match outcome {
            Ok(results) => {
                for ((_, _, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(result.map_err(StoreError::from));
                }
            }
            Err(e) => {
                for (_, _, reply) in batch {
                    let _ = reply.send(Err(StoreError::CommitFailed(e.to_string())));
                }
            }
        }
    }
}

fn insert_segment_row(
    conn: &Connection,
    s: &SegmentRecord,
    terms: Option<&RetentionTerms>,
) -> rusqlite::Result<()> {
    conn.prepare_cached(&format!(
        "INSERT INTO segments ({SEGMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?
    .execute(params![
        s.segment_id.to_string(),
        s.session_id.to_string(),
        s.sequence,
        s.device_id.to_string(),
        s.manifest_sha256,
        s.prev_manifest_sha256,
        s.last_in_session,
        s.recorded_at,
        s.received_at,
        s.receipt
    ])?;
    if let Some(t) = terms {
        set_terms(conn, s.segment_id, t)?;
    }
    Ok(())
}
