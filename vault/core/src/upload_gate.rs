//! Who may send a segment body (issue 13 §4): before the vault reads an upload's body (up to
//! `--max-body-bytes`), the request's `X-Vigil-Device-Signature` header must be signed, for this
//! session and sequence, by an enrolled, unrevoked device, and that device must be within its
//! upload rate. The body read then must hash to what the header signed, and the manifest inside
//! must be signed by the same device (ingest checks it). The header's time is not held against
//! the device: a replayed header carries the same body to the same position, which ingest
//! answers as a duplicate, and a device with a wrong clock must still deliver (its segments'
//! times are bounded at ingest, see `retention::counted_times`).

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;
use vigil_proto::upload_auth::{UploadAuth, UploadAuthError};
use vigil_vault_store::metadata::StoreError;

use crate::Vault;

/// Why an upload is refused before its body is read, or right after.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// No device signature header.
    #[error("segment uploads need the device's signature header (x-vigil-device-signature)")]
    Missing,
    /// The header is malformed or its signature does not verify.
    #[error(transparent)]
    Auth(#[from] UploadAuthError),
    /// The key is no enrolled device's.
    #[error("the upload's key is not an enrolled device's")]
    UnknownDevice,
    /// The device was revoked.
    #[error("device {0} is revoked")]
    Revoked(Uuid),
    /// The device sends faster than its rate: retry after this many seconds.
    #[error("too many uploads from this device; retry in {0} s")]
    RateLimited(u64),
    /// The body read is not the one the header signed.
    #[error("the body does not hash to what the device signed")]
    BodyMismatch,
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl GateError {
    /// A stable name for the refusal, for responses, logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            GateError::Missing => "device_signature_required",
            GateError::Auth(UploadAuthError::BadSignature) => "bad_device_signature",
            GateError::Auth(_) => "bad_device_signature_header",
            GateError::UnknownDevice => "unknown_device",
            GateError::Revoked(_) => "revoked_device",
            GateError::RateLimited(_) => "rate_limited",
            GateError::BodyMismatch => "body_mismatch",
            GateError::Store(_) => "internal",
        }
    }
}

/// An upload let through the gate: read its body, then [`Admitted::check_body`]. It holds one
/// of the device's in-flight slots until dropped.
#[derive(Debug)]
pub struct Admitted {
    /// The device.
    pub device_id: Uuid,
    /// Its key (the manifest must be signed with it).
    pub device_key: ed25519_dalek::VerifyingKey,
    body_sha256: String,
    _slot: Slot,
}

/// One of a device's uploads in flight; freed on drop.
#[derive(Debug)]
struct Slot {
    device: Uuid,
    in_flight: std::sync::Arc<Mutex<HashMap<Uuid, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_flight.get_mut(&self.device) {
            *n -= 1;
            if *n == 0 {
                in_flight.remove(&self.device);
            }
        }
    }
}

impl Admitted {
    /// Whether `body` is the one the device signed.
    pub fn check_body(&self, body: &[u8]) -> Result<(), GateError> {
        self.check_digest(&vigil_proto::sha256_hex(body))
    }

    /// Whether a body of SHA-256 `sha256_hex` (lowercase hex) is the one the device signed.
    pub fn check_digest(&self, sha256_hex: &str) -> Result<(), GateError> {
        if sha256_hex == self.body_sha256 {
            Ok(())
        } else {
            Err(GateError::BodyMismatch)
        }
    }
}

/// Per-device token buckets (`rate` uploads a second on average, bursts of `burst`) and a
/// cap on each device's uploads in flight: one device holds at most `max_in_flight` bodies in
/// memory, however fast its bucket refills.
#[derive(Debug)]
pub struct UploadRate {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<Uuid, (f64, f64)>>,
    max_in_flight: usize,
    in_flight: std::sync::Arc<Mutex<HashMap<Uuid, usize>>>,
}

/// The default cap on one device's uploads in flight (agents send 2 at once by default).
pub const DEFAULT_IN_FLIGHT_PER_DEVICE: usize = 8;

impl UploadRate {
    /// Buckets of `burst` uploads refilled at `per_second` (0: no limit), at most
    /// [`DEFAULT_IN_FLIGHT_PER_DEVICE`] in flight per device.
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self::with_in_flight(per_second, burst, DEFAULT_IN_FLIGHT_PER_DEVICE)
    }

    /// [`UploadRate::new`] with another cap on uploads in flight per device (0: none).
    pub fn with_in_flight(per_second: f64, burst: u32, max_in_flight: usize) -> Self {
        Self {
            rate: per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
            max_in_flight,
            in_flight: std::sync::Arc::default(),
        }
    }

    /// Takes one of `device`'s in-flight slots, or says to retry in a second.
    fn slot(&self, device: Uuid) -> Result<Slot, u64> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = in_flight.entry(device).or_insert(0);
        if self.max_in_flight > 0 && *n >= self.max_in_flight {
            return Err(1);
        }
        *n += 1;
        Ok(Slot {
            device,
            in_flight: self.in_flight.clone(),
        })
    }

    /// Takes one upload from `device`'s bucket at `now` (seconds), or says how long to wait.
    pub fn take(&self, device: Uuid, now: f64) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > 100_000 {
            buckets.clear(); // bounded: a forgotten bucket starts full again
        }
        let (tokens, at) = buckets.entry(device).or_insert((self.burst, now));
        *tokens = (*tokens + (now - *at).max(0.0) * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// Checks an upload's header for `session`/`sequence` (parsed with
/// [`crate::ingest::parse_ids`]) before its body is read.
pub fn admit(
    vault: &Vault,
    rate: &UploadRate,
    header: Option<&str>,
    (session, sequence): (Uuid, u64),
    now: f64,
) -> Result<Admitted, GateError> {
    let header = header.ok_or(GateError::Missing)?;
    let auth = UploadAuth::parse(header)?;
    auth.verify(session, sequence)?;
    let device = crate::rekey::device_for_key(
        vault.store(),
        &auth.device_key.to_bytes(),
        crate::clock::now().unix_timestamp(),
    )?
    .ok_or(GateError::UnknownDevice)?;
    if device.revoked_at.is_some() {
        return Err(GateError::Revoked(device.id));
    }
    let slot = rate.slot(device.id).map_err(GateError::RateLimited)?;
    rate.take(device.id, now).map_err(GateError::RateLimited)?;
    Ok(Admitted {
        device_id: device.id,
        device_key: auth.device_key,
        body_sha256: auth.body_sha256,
        _slot: slot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_allow_bursts_then_the_rate() {
        let rate = UploadRate::new(2.0, 3);
        let d = Uuid::from_u128(1);
        for _ in 0..3 {
            rate.take(d, 100.0).unwrap();
        }
        assert_eq!(rate.take(d, 100.0), Err(1));
        rate.take(d, 100.5).unwrap(); // one token back after half a second
        assert!(rate.take(d, 100.5).is_err());
        // Another device has its own bucket; no limit at rate 0.
        rate.take(Uuid::from_u128(2), 100.5).unwrap();
        let none = UploadRate::new(0.0, 1);
        for _ in 0..100 {
            none.take(d, 1.0).unwrap();
        }
    }

    #[test]
    fn a_device_holds_at_most_its_slots_until_they_are_dropped() {
        let rate = UploadRate::with_in_flight(0.0, 1, 2);
        let d = Uuid::from_u128(1);
        let (a, b) = (rate.slot(d).unwrap(), rate.slot(d).unwrap());
        assert!(rate.slot(d).is_err());
        rate.slot(Uuid::from_u128(2)).unwrap();
        drop(a);
        let _c = rate.slot(d).unwrap();
        drop(b);
        assert!(rate.in_flight.lock().unwrap()[&d] == 1);
    }
}
