//! The vault's domain (brief §6): everything the vault does, whoever asks, over the storage seams
//! of `vigil-vault-store`. The HTTP API (`vigil-vault-http`) and the `vigil-vault` command line
//! both call into it; nothing here knows about HTTP.
//!
//! - [`init()`] creates a deployment and [`Vault`] is an opened one with its private keys;
//!   [`VaultConfig`] is its `vault.toml`;
//! - devices: [`enroll`] (one-use tokens), [`ingest`] (verified, idempotent, signed receipts),
//!   [`heartbeat`] and [`gaps`] (what an agent reported and what is missing), [`live`];
//! - policy: [`policy`] (layers, resolution, signing) and [`policy_push`] (long-poll wake-ups);
//! - people: [`access`] (roles, permissions, every route's rule), [`accounts`], [`api_auth`]
//!   (sessions, API tokens, Basic, lockout), [`credentials`] (hashing and random secrets);
//! - the record: [`audit`] (hash-chained), [`search`] (the recordings index);
//! - lifecycle: [`retention`], [`holds`], [`redact`], [`delete`];
//! - evidence: [`export`] writes an evidence export, [`verify_export`] checks one offline,
//!   [`identity`] hands the recording identity out (audited);
//! - [`admin`] holds the offline commands (tokens, devices, gaps) that need no private key, and
//!   [`when`] the time arguments every command and route accepts.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod access;
pub mod accounts;
pub mod admin;
pub mod api_auth;
pub mod audit;
pub mod audit_anchor;
pub mod clock;
mod config;
pub mod credentials;
pub mod delete;
pub mod enroll;
pub mod export;
pub mod gaps;
pub mod grants;
pub mod heartbeat;
pub mod holds;
pub mod identity;
pub mod ingest;
mod init;
pub mod keys;
pub mod live;
pub mod mfa;
pub mod orphans;
pub mod playback;
pub mod policy;
pub mod policy_change;
pub mod policy_push;
pub mod redact;
pub mod rekey;
pub mod retention;
pub mod sealed_for;
pub mod search;
pub mod secrets;
pub mod tls;
pub mod upload_gate;
mod vault;
pub mod verify_export;
pub mod when;

pub use config::{RetentionConfig, VaultConfig, LAYOUT_FORMAT};
pub use init::{init, InitError, InitOptions, InitReport};
pub use vault::{OpenError, OpenMediaError, Vault};
