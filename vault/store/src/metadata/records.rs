//! The records the metadata store keeps, and its one error type.

use uuid::Uuid;

/// An error of the storage backend (I/O, corruption, a broken invariant). Never user input.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The SQLite backend failed.
    #[error("metadata store (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL backend failed (its messages carry no password). The text names every
    /// cause: the client's own says only "db error" or "error performing TLS handshake".
    #[error("metadata store (PostgreSQL): {}", with_causes(.0))]
    Postgres(#[from] ::postgres::Error),
    /// The backend's settings are unusable (e.g. a malformed PostgreSQL URL).
    #[error("metadata store settings: {0}")]
    Config(String),
    /// A group commit failed: none of its rows was stored.
    #[error("metadata store: commit failed: {0}")]
    CommitFailed(String),
    /// A stored value does not parse back.
    #[error("metadata store holds a malformed value: {0}")]
    Corrupt(String),
    /// The database was made by a newer version.
    #[error("metadata schema version {found} is newer than this vault knows ({known})")]
    SchemaTooNew {
        /// The database's version.
        found: i64,
        /// The newest this code knows.
        known: i64,
    },
}

/// An error and each of its causes, `: `-separated.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// A user account of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Login name.
    pub name: String,
    /// Role (`admin`, …).
    pub role: String,
    /// PHC string of the password hash (argon2id).
    pub password_hash: String,
    /// Whether the password must be changed at first login.
    pub must_change_password: bool,
}

/// An enrollment token as stored: only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// SHA-256 of the token text, hex.
    pub token_sha256: String,
    /// Team the enrolled device joins.
    pub team: Option<String>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Expiry time, Unix seconds: the token is refused from this second on.
    pub expires_at: i64,
}

/// An enrolled device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// The id the vault assigned.
    pub id: Uuid,
    /// The device's Ed25519 public key.
    pub public_key: [u8; 32],
    /// The key's id ([`vigil_proto::device_key_id`]), the device id the agent used before enrolling.
    pub key_id: String,
    /// Host name the agent reported.
    pub hostname: String,
    /// OS user the agent reported.
    pub user: String,
    /// Team from the token.
    pub team: Option<String>,
    /// Enrollment time, Unix seconds.
    pub enrolled_at: i64,
    /// Revocation time, Unix seconds.
    pub revoked_at: Option<i64>,
}

/// What became of an enrollment attempt, decided atomically with the token's use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollOutcome {
    /// A new device was stored and the token used up.
    Enrolled(DeviceRecord),
    /// The key was already enrolled and not revoked: the token is used up, the device is unchanged.
    AlreadyEnrolled(DeviceRecord),
    /// No token with this hash exists.
    UnknownToken,
    /// The token was used before.
    TokenUsed,
    /// The token has expired.
    TokenExpired,
    /// The key belongs to a revoked device: it cannot enroll again.
    KeyRevoked,
}

/// A stored segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRecord {
    /// The manifest's segment id.
    pub segment_id: Uuid,
    /// Recording session.
    pub session_id: Uuid,
    /// Sequence number in the session, from 1.
    pub sequence: i64,
    /// The device that signed it.
    pub device_id: Uuid,
    /// SHA-256 of the signed manifest envelope, hex.
    pub manifest_sha256: String,
    /// The predecessor's digest named by the manifest.
    pub prev_manifest_sha256: Option<String>,
    /// The manifest says the session ended with it.
    pub last_in_session: bool,
    /// Recording start (the manifest's wall clock), Unix seconds.
    pub recorded_at: i64,
    /// Receipt time, Unix seconds.
    pub received_at: i64,
    /// The signed receipt, exactly as first returned.
    pub receipt: Vec<u8>,
}

/// Sequence numbers stored per session, and whether the session was closed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSequences {
    /// Stored sequence numbers, ascending.
    pub sequences: Vec<i64>,
    /// Some stored segment says it was the last of the session.
    pub closed: bool,
}

/// Which segments to list (every given condition must hold).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentFilter {
    /// Only this session.
    pub session: Option<Uuid>,
    /// Only this device.
    pub device: Option<Uuid>,
    /// Recorded at or after this time, Unix seconds.
    pub from: Option<i64>,
    /// Recorded before this time, Unix seconds.
    pub to: Option<i64>,
}

/// What a device last said about one of its sessions (its heartbeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionReport {
    /// The session.
    pub session_id: Uuid,
    /// The reporting device.
    pub device_id: Uuid,
    /// Highest sequence number the agent sealed.
    pub produced: i64,
    /// Sealed but not yet acknowledged (in transit), ascending.
    pub pending: Vec<i64>,
    /// The agent closed the session.
    pub closed: bool,
    /// When the report arrived, Unix seconds.
    pub reported_at: i64,
}

/// An audit event before it is chained.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditDraft {
    /// When it happened, Unix seconds.
    pub at: i64,
    /// Who did it (`admin:<name>`, `cli:<os user>`, `device:<id>`, `vault`).
    pub actor: String,
    /// What was done (`keys.export_recording_identity`, `device.revoke`, …).
    pub action: String,
    /// What it was done to (an id), if anything.
    pub target: Option<String>,
    /// The reason the actor stated.
    pub reason: Option<String>,
    /// Where the request came from: the client's address (behind a trusted proxy, the address
    /// it forwarded), or `local` for a command run on the vault's host.
    pub client_addr: Option<String>,
    /// The client's `User-Agent`, cut and made printable, or the command line's name.
    pub user_agent: Option<String>,
}

/// An audit event as stored: numbered and hash-chained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the log, from 1.
    pub seq: i64,
    /// The event.
    pub draft: AuditDraft,
    /// The previous record's hash (64 zeros for the first).
    pub prev_sha256: String,
    /// This record's hash ([`AuditRecord::chain_hash`]).
    pub sha256: String,
}

impl AuditRecord {
    /// The hash that chains a record to its predecessor: SHA-256 over the previous hash and
    /// every field, each length-prefixed so no two records encode alike. Every backend chains
    /// with this function inside the transaction that appends.
    pub fn chain_hash(seq: i64, prev_sha256: &str, draft: &AuditDraft) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(b"vigil.audit.v1");
        field(&seq.to_be_bytes());
        field(prev_sha256.as_bytes());
        field(&draft.at.to_be_bytes());
        field(draft.actor.as_bytes());
        field(draft.action.as_bytes());
        field(draft.target.as_deref().unwrap_or("").as_bytes());
        field(draft.reason.as_deref().unwrap_or("").as_bytes());
        // Records written before the origin was kept hash as they did then.
        if draft.client_addr.is_some() || draft.user_agent.is_some() {
            field(b"origin");
            field(draft.client_addr.as_deref().unwrap_or("").as_bytes());
            field(draft.user_agent.as_deref().unwrap_or("").as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The hash of "no predecessor".
    pub const GENESIS: &'static str =
        "0000000000000000000000000000000000000000000000000000000000000000";
}
