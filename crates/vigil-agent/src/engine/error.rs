//! Why a recording failed or was refused.

use vigil_capture::CaptureError;
use vigil_media::MediaError;
use vigil_spool::SpoolError;

use crate::control::ServeError;
use crate::delivery::DeliveryError;
use crate::enrollment::EnrollError;
use crate::sealing::SealingError;

/// Why recording failed or was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// Nothing can be sealed or delivered: no valid recipient, no device key, an unusable
    /// enrollment, or a spool over its quota (Vigil does not record then).
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The enrollment is unusable (keystore, vault CA).
    #[error(transparent)]
    Enrollment(#[from] EnrollError),
    /// A capture source could not start.
    #[error("capture")]
    Capture(#[from] CaptureError),
    /// Encoding failed.
    #[error("media")]
    Media(#[from] MediaError),
    /// A segment could not be sealed or written, or the spool filled up while recording.
    #[error(transparent)]
    Sealing(#[from] SealingError),
    /// The site masking rules are invalid.
    #[error("masking rules")]
    Rules(#[from] vigil_mask::RuleError),
    /// The local control API could not start.
    #[error("control API")]
    Control(#[from] ServeError),
    /// The spool could not be opened.
    #[error("spool")]
    Spool(#[source] SpoolError),
}
