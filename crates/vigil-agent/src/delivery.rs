//! Who the recording is sealed for and where it goes: an enrolled agent seals to the vault's
//! recipients (plus any escrow recipients IT configured) under the device id the vault
//! assigned, and runs the uploader; an agent that was never enrolled seals to the configured
//! recipients only and keeps everything in its spool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vigil_seal::{DeviceKey, DeviceKeyError, Recipients, RecipientsError, Sealer};
use vigil_spool::uploader::{AgentReportHandle, Delivery, ReceiptKey, Uploader, UploaderConfig};
use vigil_spool::{Spool, SpoolError};

use crate::enrollment::{EnrollError, Enrollment};

/// Why this device cannot seal or deliver a recording; each refuses it before capture starts,
/// except a quota reached while recording, which stops capture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// No valid recipient: Vigil does not record what nobody authorised can open.
    #[error(transparent)]
    Recipients(#[from] RecipientsError),
    /// A recipient given to an enrolled agent (flag or managed settings) that its vault does
    /// not sign: sealing to it would let its holder read the recording.
    #[error(
        "recipient {0} is not one the vault signs: an enrolled agent seals only to its vault's \
         recipients (escrow recipients are set at the vault: `vigil-vault init \
         --escrow-recipient`, or `escrow_recipients` in vault.toml)"
    )]
    UnsignedRecipient(String),
    /// The device key could not be loaded.
    #[error(transparent)]
    DeviceKey(#[from] DeviceKeyError),
    /// The enrollment is unusable (keystore, vault CA).
    #[error(transparent)]
    Enrollment(#[from] EnrollError),
    /// The spool holds as much as it may: capture stopped, nothing sealed was dropped.
    #[error(
        "spool quota reached: {segments} segments ({bytes} bytes, quota {quota}) wait for the \
         vault; capture stopped"
    )]
    QuotaReached {
        /// Segments waiting.
        segments: u64,
        /// Their bytes.
        bytes: u64,
        /// The quota.
        quota: u64,
    },
    /// The spool's backlog could not be read.
    #[error("spool")]
    Spool(#[source] SpoolError),
}

/// The sealer of this device and, when enrolled, its running uploader.
pub(crate) struct Identity {
    pub sealer: Sealer,
    pub uploader: Option<Uploader>,
    /// What heartbeats say about this agent (enrolled agents only).
    pub report: Option<AgentReportHandle>,
    /// The enrollment, when enrolled (the policy sync needs its keys and client).
    pub enrollment: Option<Enrollment>,
}

/// Opens the device identity. Fails closed: no valid recipient or no device key, no recording.
///
/// An enrolled agent seals to the recipients of the vault's last good signed policy
/// (`signed`), or before it has one to those of its enrollment; `configured` recipients (a
/// flag, managed settings) must be among them. `enrollment.json` sits in the user's spool: a
/// recipient added there is not signed, and is not sealed to once a policy arrived.
pub(crate) fn open_identity(
    spool: &Spool,
    configured: &[String],
    signed: Option<&[String]>,
    receipt_key: Option<&ReceiptKey>,
    upload: &UploaderConfig,
) -> Result<Identity, DeliveryError> {
    match Enrollment::load(spool.root())? {
        Some(enrollment) => {
            let vaults = match signed {
                Some(signed) => {
                    if signed != enrollment.recipients.as_slice() {
                        tracing::warn!(
                            "the enrollment's recipients differ from the vault's signed ones; \
                             sealing to the signed ones"
                        );
                    }
                    signed.to_vec()
                }
                None => enrollment.recipients.clone(),
            };
            if let Some(stray) = configured.iter().find(|r| !vaults.contains(r)) {
                return Err(DeliveryError::UnsignedRecipient(stray.clone()));
            }
            let recipients = Recipients::parse(&vaults)?;
            let key = enrollment.device_key()?;
            let report = AgentReportHandle::default();
            let delivery = Delivery {
                client: enrollment.client()?,
                receipt_key: match receipt_key {
                    Some(shared) => shared.clone(),
                    None => ReceiptKey::new(enrollment.receipt_key()?),
                },
                device_id: enrollment.device_id,
                device_key: key.signing_key().clone(),
                report: report.clone(),
            };
            let sealer = Sealer::with_device_id(recipients, key, enrollment.device_id.to_string());
            let uploader = Uploader::start(spool.clone(), delivery, upload.clone());
            Ok(Identity {
                sealer,
                uploader: Some(uploader),
                report: Some(report),
                enrollment: Some(enrollment),
            })
        }
        None => {
            let recipients = Recipients::parse(configured)?;
            let key = DeviceKey::load_or_create(&spool.config_dir().join("device.key"))?;
            Ok(Identity {
                sealer: Sealer::new(recipients, key),
                uploader: None,
                report: None,
                enrollment: None,
            })
        }
    }
}

/// Fails with [`DeliveryError::QuotaReached`] when the spool holds `quota` bytes or more that
/// the vault has not acknowledged.
pub(crate) fn check_quota(spool: &Spool, quota: u64) -> Result<(), DeliveryError> {
    let backlog = spool
        .outbox()
        .backlog()
        .map_err(|e| DeliveryError::Spool(e.into()))?;
    if backlog.bytes >= quota {
        return Err(DeliveryError::QuotaReached {
            segments: backlog.segments,
            bytes: backlog.bytes,
            quota,
        });
    }
    Ok(())
}

/// Before capture starts on a spool over its quota: waits (uploading) until the backlog falls
/// under 90 % of the quota, or fails at once when nothing can drain it.
pub(crate) fn wait_under_quota(
    spool: &Spool,
    quota: u64,
    uploading: bool,
    stop: &AtomicBool,
) -> Result<(), DeliveryError> {
    let mut alarmed = false;
    loop {
        match check_quota(spool, quota - quota / 10) {
            Ok(()) => return Ok(()),
            Err(e) if !uploading || stop.load(Ordering::SeqCst) => return Err(e),
            Err(e) => {
                if !alarmed {
                    tracing::error!(error = %e, "capture held back until the vault takes the backlog");
                    alarmed = true;
                }
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}
