//! The metadata store at scale: PostgreSQL through the synchronous `postgres` client.
//!
//! The `postgres` client drives its connection on a private current-thread runtime, which is
//! fine from the server's blocking tasks (they are not inside an async context) but panics on
//! an async worker thread: call the store from `spawn_blocking` (the tests check that it works
//! there), and note that dropping it anywhere is safe (see the `Drop` impl). A small pool of connections, each behind its
//! own lock, lets several uploads talk to the database at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

mod access;
mod device_keys;
mod live;
mod policy;
mod rows;
mod schema;
mod tls;

pub use tls::{PgTls, PgTlsMode};

use rows::{audit_row, device_row, rows, segment_row, DEVICE_COLUMNS, SEGMENT_COLUMNS};

use postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use uuid::Uuid;

mod lifecycle;

use super::{
    AuditDraft, AuditRecord, DeviceRecord, EnrollOutcome, MetadataStore, SegmentFilter,
    SegmentRecord, SessionReport, SessionSequences, StoreError, TokenRecord, UserRecord,
};

/// Connections kept open by default.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// Metadata in a PostgreSQL database.
pub struct PostgresStore {
    config: postgres::Config,
    /// The TLS connector (`None`: plain TCP, see [`tls`]).
    tls: Option<MakeRustlsConnect>,
    pool: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for PostgresStore {
    // The configuration may hold a password: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.len())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user[:password]@host:port/db` or key=value form), and
    /// creates the schema if the database has none.
    /// The transport follows the URL's `sslmode`, else the host (see [`PgTls`]).
    pub fn open(url: &str, pool_size: usize) -> Result<Self, StoreError> {
        Self::open_with(url, pool_size, &PgTls::default())
    }

    /// [`PostgresStore::open`] with the TLS settings of `[storage]`.
    pub fn open_with(url: &str, pool_size: usize, tls: &PgTls) -> Result<Self, StoreError> {
        let tls::Connection { config, tls } = tls::connection(url, tls)?;
        let store = Self {
            config,
            tls,
            pool: (0..pool_size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
        };
        store.with_client(schema::migrate)?;
        store.with_client(schema::migrate_access)?;
        Ok(store)
    }

    /// Runs `f` on a pooled connection, reconnecting one that was closed.
    fn with_client<T>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.slot();
        if slot.as_ref().is_none_or(Client::is_closed) {
            *slot = Some(match &self.tls {
                Some(tls) => self.config.connect(tls.clone())?,
                None => self.config.connect(NoTls)?,
            });
        }
        let client = slot.as_mut().expect("connected above");
        f(client)
    }

    /// A free connection if there is one, else waits for the next in turn.
    fn slot(&self) -> MutexGuard<'_, Option<Client>> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.pool.len();
        for i in 0..n {
            if let Ok(guard) = self.pool[(start + i) % n].try_lock() {
                return guard;
            }
        }
        // A panic mid-query leaves at worst an aborted transaction, which the server rolls
        // back when the connection is next used or closed.
        self.pool[start % n]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Closing a client blocks on its private runtime, which panics inside an async
        // context (a store dropped by the server's async code): close them on a plain thread.
        let clients: Vec<Client> = self
            .pool
            .iter_mut()
            .filter_map(|slot| slot.get_mut().unwrap_or_else(|e| e.into_inner()).take())
            .collect();
        if !clients.is_empty() {
            let _ = std::thread::spawn(move || drop(clients)).join();
        }
    }
}

impl MetadataStore for PostgresStore {
    fn create_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO users (name, role, password_hash, must_change_password, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    &user.name,
                    &user.role,
                    &user.password_hash,
                    &user.must_change_password,
                    &time::OffsetDateTime::now_utc().unix_timestamp(),
                ],
            )?;
            Ok(())
        })
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        self.with_client(|c| {
            let row = c.query_opt(
                "SELECT name, role, password_hash, must_change_password FROM users \
                 WHERE name = $1",
                &[&name],
            )?;
            row.map(|r| {
                Ok(UserRecord {
                    name: r.try_get(0)?,
                    role: r.try_get(1)?,
                    password_hash: r.try_get(2)?,
                    must_change_password: r.try_get(3)?,
                })
            })
            .transpose()
        })
    }

    fn insert_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO enrollment_tokens (token_sha256, team, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4)",
                &[
                    &token.token_sha256,
                    &token.team,
                    &token.created_at,
                    &token.expires_at,
                ],
            )?;
            Ok(())
        })
    }

    fn enroll(
        &self,
        token_sha256: &str,
        now: i64,
        device: &DeviceRecord,
    ) -> Result<EnrollOutcome, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            // FOR UPDATE: two enrollments with one token wait for each other, so only one wins.
            let token = tx.query_opt(
                "SELECT team, expires_at, used_at FROM enrollment_tokens \
                 WHERE token_sha256 = $1 FOR UPDATE",
                &[&token_sha256],
            )?;
            let team: Option<String> = match token {
                None => return Ok(EnrollOutcome::UnknownToken),
                Some(row) => {
                    let used_at: Option<i64> = row.try_get(2)?;
                    let expires_at: i64 = row.try_get(1)?;
                    if used_at.is_some() {
                        return Ok(EnrollOutcome::TokenUsed);
                    }
                    if now >= expires_at {
                        return Ok(EnrollOutcome::TokenExpired);
                    }
                    row.try_get(0)?
                }
            };
            let key = device.public_key.as_slice();
            let existing = tx
                .query_opt(
                    &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE public_key = $1"),
                    &[&key],
                )?
                .map(|r| device_row(&r))
                .transpose()?;
            let outcome = match existing {
                Some(d) if d.revoked_at.is_some() => return Ok(EnrollOutcome::KeyRevoked),
                Some(d) => EnrollOutcome::AlreadyEnrolled(d),
                None => {
                    let device = DeviceRecord {
                        team,
                        ..device.clone()
                    };
                    tx.execute(
                        "INSERT INTO devices (id, public_key, key_id, hostname, os_user, team, \
                         enrolled_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        &[
                            &device.id,
                            &key,
                            &device.key_id,
                            &device.hostname,
                            &device.user,
                            &device.team,
                            &device.enrolled_at,
                        ],
                    )?;
                    EnrollOutcome::Enrolled(device)
                }
            };
            let device_id = match &outcome {
                EnrollOutcome::Enrolled(d) | EnrollOutcome::AlreadyEnrolled(d) => d.id,
                _ => unreachable!("only enrollments reach this point"),
            };
            tx.execute(
                "UPDATE enrollment_tokens SET used_at = $1, used_by = $2 WHERE token_sha256 = $3",
                &[&now, &device_id, &token_sha256],
            )?;
            tx.commit()?;
            Ok(outcome)
        })
    }

    fn device_by_key(&self, public_key: &[u8; 32]) -> Result<Option<DeviceRecord>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE public_key = $1"),
                &[&public_key.as_slice()],
            )?
            .map(|r| device_row(&r))
            .transpose()
        })
    }

    fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.with_client(|c| {
            let found = c.query(
                &format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at, id"),
                &[],
            )?;
            rows(found, device_row)
        })
    }

    fn revoke_device(&self, id: Uuid, now: i64) -> Result<bool, StoreError> {
        self.with_client(|c| {
            // COALESCE keeps the first revocation time.
            let changed = c.execute(
                "UPDATE devices SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2",
                &[&now, &id],
            )?;
            Ok(changed > 0)
        })
    }

    fn segment(&self, session: Uuid, sequence: i64) -> Result<Option<SegmentRecord>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!(
                    "SELECT {SEGMENT_COLUMNS} FROM segments WHERE session_id = $1 AND sequence = $2"
                ),
                &[&session, &sequence],
            )?
            .map(|r| segment_row(&r))
            .transpose()
        })
    }

    fn segment_by_id(&self, segment_id: Uuid) -> Result<Option<SegmentRecord>, StoreError> {
        self.with_client(|c| {
            c.query_opt(
                &format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE segment_id = $1"),
                &[&segment_id],
            )?
            .map(|r| segment_row(&r))
            .transpose()
        })
    }

    fn session_device(&self, session: Uuid) -> Result<Option<Uuid>, StoreError> {
        self.with_client(|c| {
            Ok(c.query_opt(
                "SELECT device_id FROM segments WHERE session_id = $1 LIMIT 1",
                &[&session],
            )?
            .map(|r| r.try_get(0))
            .transpose()?)
        })
    }

    fn insert_segment(&self, s: &SegmentRecord) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                &format!(
                    "INSERT INTO segments ({SEGMENT_COLUMNS}) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                ),
                &[
                    &s.segment_id,
                    &s.session_id,
                    &s.sequence,
                    &s.device_id,
                    &s.manifest_sha256,
                    &s.prev_manifest_sha256,
                    &s.last_in_session,
                    &s.recorded_at,
                    &s.received_at,
                    &s.receipt,
                ],
            )?;
            Ok(())
        })
    }

    fn session_sequences(
        &self,
        session: Option<Uuid>,
    ) -> Result<BTreeMap<Uuid, SessionSequences>, StoreError> {
        self.with_client(|c| {
            let found = c.query(
                "SELECT session_id, sequence, last_in_session FROM segments \
                 WHERE $1::uuid IS NULL OR session_id = $1 ORDER BY session_id, sequence",
                &[&session],
            )?;
            let mut out: BTreeMap<Uuid, SessionSequences> = BTreeMap::new();
            for row in found {
                let entry = out.entry(row.try_get(0)?).or_default();
                entry.sequences.push(row.try_get(1)?);
                entry.closed |= row.try_get::<_, bool>(2)?;
            }
            Ok(out)
        })
    }

    fn segments(&self, f: &SegmentFilter) -> Result<Vec<SegmentRecord>, StoreError> {
        self.with_client(|c| {
            let found = c.query(
                &format!(
                    "SELECT {SEGMENT_COLUMNS} FROM segments \
                     WHERE ($1::uuid IS NULL OR session_id = $1) \
                     AND ($2::uuid IS NULL OR device_id = $2) \
                     AND ($3::bigint IS NULL OR recorded_at >= $3) \
                     AND ($4::bigint IS NULL OR recorded_at < $4) \
                     ORDER BY session_id, sequence"
                ),
                &[&f.session, &f.device, &f.from, &f.to],
            )?;
            rows(found, segment_row)
        })
    }

    fn put_session_report(&self, r: &SessionReport) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.execute(
                "INSERT INTO session_reports (session_id, device_id, produced, pending, closed, \
                 reported_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (session_id) DO UPDATE \
                 SET device_id = $2, produced = $3, pending = $4, closed = $5, reported_at = $6",
                &[
                    &r.session_id,
                    &r.device_id,
                    &r.produced,
                    &r.pending,
                    &r.closed,
                    &r.reported_at,
                ],
            )?;
            Ok(())
        })
    }

    fn session_reports(
        &self,
        session: Option<Uuid>,
    ) -> Result<BTreeMap<Uuid, SessionReport>, StoreError> {
        self.with_client(|c| {
            let found = c.query(
                "SELECT session_id, device_id, produced, pending, closed, reported_at \
                 FROM session_reports WHERE $1::uuid IS NULL OR session_id = $1",
                &[&session],
            )?;
            let mut out = BTreeMap::new();
            for r in found {
                let report = SessionReport {
                    session_id: r.try_get(0)?,
                    device_id: r.try_get(1)?,
                    produced: r.try_get(2)?,
                    pending: r.try_get(3)?,
                    closed: r.try_get(4)?,
                    reported_at: r.try_get(5)?,
                };
                out.insert(report.session_id, report);
            }
            Ok(out)
        })
    }

    fn append_audit(&self, draft: &AuditDraft) -> Result<AuditRecord, StoreError> {
        self.with_client(|c| {
            let mut tx = c.transaction()?;
            // EXCLUSIVE blocks other appenders (and writers) until commit but not readers: two
            // vaults appending at once cannot both chain to the same predecessor.
            tx.batch_execute("LOCK TABLE audit_log IN EXCLUSIVE MODE")?;
            let last = tx.query_opt(
                "SELECT seq, sha256 FROM audit_log ORDER BY seq DESC LIMIT 1",
                &[],
            )?;
            let (seq, prev) = match last {
                Some(row) => (row.try_get::<_, i64>(0)? + 1, row.try_get::<_, String>(1)?),
                None => (1, AuditRecord::GENESIS.to_owned()),
            };
            let sha256 = AuditRecord::chain_hash(seq, &prev, draft);
            tx.execute(
                "INSERT INTO audit_log (seq, at, actor, action, target, reason, prev_sha256, \
                 sha256, client_addr, user_agent) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &seq,
                    &draft.at,
                    &draft.actor,
                    &draft.action,
                    &draft.target,
                    &draft.reason,
                    &prev,
                    &sha256,
                    &draft.client_addr,
                    &draft.user_agent,
                ],
            )?;
            tx.commit()?;
            Ok(AuditRecord {
                seq,
                draft: draft.clone(),
                prev_sha256: prev,
                sha256,
            })
        })
    }

    fn audit_records(&self, after: i64, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.with_client(|c| {
            let found = c.query(
                "SELECT seq, at, actor, action, target, reason, prev_sha256, sha256, \
                 client_addr, user_agent FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
                &[&after, &limit],
            )?;
            rows(found, audit_row)
        })
    }

    fn ping(&self) -> Result<(), StoreError> {
        self.with_client(|c| {
            c.query_one("SELECT 1", &[])?;
            Ok(())
        })
    }
}
