//! Recording policy (issue 5): what the vault tells each agent to record, in three layers —
//! organization defaults, then the team's overrides, then the agent's — resolved into one
//! [`Policy`] and signed by the vault's policy key as a [`SignedPolicy`] for one device.
//!
//! Every layer field is optional: a team sets only what differs from the organization. Unknown
//! fields are refused (a misspelt `fsp` must not silently do nothing), and resolution validates
//! every value with an error that names the field and the layer it came from.

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::mask_rules::{validate_rules, Rule, RuleError};
use crate::signed::{check_kind, Document, KeyRole, Signed, SignedError};
use uuid::Uuid;

/// The `kind` of every signed policy.
pub const POLICY_KIND: &str = "vigil.policy";

/// One layer (organization, team or agent): only what it sets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyLayer {
    /// Record the two voice tracks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<bool>,
    /// Record the screen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub screen: Option<bool>,
    /// Screen frames per second (1–30).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fps: Option<u32>,
    /// Largest recorded picture height in pixels (360–2160); wider desktops are scaled down.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_height: Option<u32>,
    /// Segment length in seconds (2–600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment_seconds: Option<u32>,
    /// Delay line in milliseconds (500–5000): how far back a mask reaches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_delay_ms: Option<u32>,
    /// Silence both voice tracks on DTMF tones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtmf_masking: Option<bool>,
    /// Mask payment and password fields on focus.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub focus_masking: Option<bool>,
    /// Agents may pause recording.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_allowed: Option<bool>,
    /// The longest pause in seconds (10–3600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_max_seconds: Option<u32>,
    /// Seconds of pause an agent may take per day, all pauses together (0–86400).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_daily_budget_seconds: Option<u32>,
    /// The longest a CTI/CRM mask through the local API lasts when it names no end, and at
    /// most when it does (10–14400 seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_mask_max_seconds: Option<u32>,
    /// Days the vault keeps voice (1–3650).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_voice_days: Option<u32>,
    /// Days the vault keeps screen (1–3650, at most the voice's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_screen_days: Option<u32>,
    /// Upload bandwidth cap in bytes per second (0: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upload_max_bytes_per_second: Option<u64>,
    /// Unacknowledged bytes an agent's spool may hold (≥ 64 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spool_quota_bytes: Option<u64>,
    /// Which monitors to record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub monitors: Option<Monitors>,
    /// Site masking rules, ahead of the built-in payment rules (replaces the lower layers'
    /// list as a whole: rules are ordered, so lists do not merge).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask_rules: Option<Vec<Rule>>,
    /// Fields team and agent layers may not set (the organization layer only); only an account
    /// that may relax policy (compliance) sets them below the organization, or unlocks them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locked: Option<Vec<String>>,
}

/// The settings of a layer, by name (what `locked` may list).
pub const LAYER_FIELDS: [&str; 18] = [
    "voice",
    "screen",
    "fps",
    "max_height",
    "segment_seconds",
    "mask_delay_ms",
    "dtmf_masking",
    "focus_masking",
    "pause_allowed",
    "pause_max_seconds",
    "pause_daily_budget_seconds",
    "api_mask_max_seconds",
    "retention_voice_days",
    "retention_screen_days",
    "upload_max_bytes_per_second",
    "spool_quota_bytes",
    "monitors",
    "mask_rules",
];

impl PolicyLayer {
    /// Whether this layer sets the setting named `field` (one of [`LAYER_FIELDS`]).
    pub fn sets(&self, field: &str) -> bool {
        match field {
            "voice" => self.voice.is_some(),
            "screen" => self.screen.is_some(),
            "fps" => self.fps.is_some(),
            "max_height" => self.max_height.is_some(),
            "segment_seconds" => self.segment_seconds.is_some(),
            "mask_delay_ms" => self.mask_delay_ms.is_some(),
            "dtmf_masking" => self.dtmf_masking.is_some(),
            "focus_masking" => self.focus_masking.is_some(),
            "pause_allowed" => self.pause_allowed.is_some(),
            "pause_max_seconds" => self.pause_max_seconds.is_some(),
            "pause_daily_budget_seconds" => self.pause_daily_budget_seconds.is_some(),
            "api_mask_max_seconds" => self.api_mask_max_seconds.is_some(),
            "retention_voice_days" => self.retention_voice_days.is_some(),
            "retention_screen_days" => self.retention_screen_days.is_some(),
            "upload_max_bytes_per_second" => self.upload_max_bytes_per_second.is_some(),
            "spool_quota_bytes" => self.spool_quota_bytes.is_some(),
            "monitors" => self.monitors.is_some(),
            "mask_rules" => self.mask_rules.is_some(),
            _ => false,
        }
    }

    /// The fields this layer locks (none below the organization).
    pub fn locks(&self) -> &[String] {
        self.locked.as_deref().unwrap_or_default()
    }
}

/// Which monitors the screen recording covers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Monitors {
    /// The whole desktop, every monitor.
    #[default]
    All,
    /// The primary monitor only.
    Primary,
}

/// The resolved policy an agent applies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Record the two voice tracks.
    pub voice: bool,
    /// Record the screen.
    pub screen: bool,
    /// Screen frames per second.
    pub fps: u32,
    /// Largest recorded picture height.
    pub max_height: u32,
    /// Segment length in seconds.
    pub segment_seconds: u32,
    /// Delay line in milliseconds.
    pub mask_delay_ms: u32,
    /// Silence both voice tracks on DTMF tones.
    pub dtmf_masking: bool,
    /// Mask payment and password fields on focus.
    pub focus_masking: bool,
    /// Agents may pause recording.
    pub pause_allowed: bool,
    /// The longest pause in seconds.
    pub pause_max_seconds: u32,
    /// Seconds of pause per day, all pauses together.
    #[serde(default = "default_pause_budget")]
    pub pause_daily_budget_seconds: u32,
    /// The longest an API mask lasts.
    #[serde(default = "default_api_mask_max")]
    pub api_mask_max_seconds: u32,
    /// Days the vault keeps voice.
    pub retention_voice_days: u32,
    /// Days the vault keeps screen.
    pub retention_screen_days: u32,
    /// Upload bandwidth cap (0: none).
    pub upload_max_bytes_per_second: u64,
    /// Spool quota in bytes.
    pub spool_quota_bytes: u64,
    /// Which monitors to record.
    pub monitors: Monitors,
    /// Site masking rules, ahead of the built-in payment rules.
    pub mask_rules: Vec<Rule>,
}

impl Default for Policy {
    /// What an organization gets before anyone sets anything.
    fn default() -> Self {
        Self {
            voice: true,
            screen: true,
            fps: 5,
            max_height: 1080,
            segment_seconds: 10,
            mask_delay_ms: 600,
            dtmf_masking: true,
            focus_masking: true,
            pause_allowed: false,
            pause_max_seconds: 300,
            pause_daily_budget_seconds: default_pause_budget(),
            api_mask_max_seconds: default_api_mask_max(),
            retention_voice_days: 2555,
            retention_screen_days: 180,
            upload_max_bytes_per_second: 0,
            spool_quota_bytes: 2 << 30,
            monitors: Monitors::All,
            mask_rules: Vec::new(),
        }
    }
}

/// Half an hour of pauses a day unless the organization says otherwise.
fn default_pause_budget() -> u32 {
    1800
}

/// A CTI/CRM mask that is never ended lifts after 15 minutes.
fn default_api_mask_max() -> u32 {
    900
}

/// Where a layer sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerScope {
    /// Organization defaults.
    Organization,
    /// A team's overrides.
    Team,
    /// One agent's overrides.
    Agent,
}

/// Why a policy does not resolve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A value is out of its range.
    #[error("{scope:?} policy: {field} = {value} is out of range ({range})")]
    OutOfRange {
        /// The layer that set it.
        scope: LayerScope,
        /// The field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The allowed range, as text.
        range: &'static str,
    },
    /// Values that contradict each other.
    #[error("policy: {0}")]
    Inconsistent(String),
    /// A masking rule is unusable (matches nothing in particular, or reuses an id).
    #[error("{scope:?} policy: mask_rules: {source}")]
    Rules {
        /// The layer that set them.
        scope: LayerScope,
        /// What is wrong.
        source: RuleError,
    },
}

macro_rules! overlay {
    ($policy:ident, $layer:ident, $($field:ident),* $(,)?) => {
        $(if let Some(v) = $layer.$field { $policy.$field = v; })*
    };
}

fn check(
    scope: LayerScope,
    field: &'static str,
    value: Option<u64>,
    lo: u64,
    hi: u64,
    range: &'static str,
) -> Result<(), PolicyError> {
    match value {
        Some(v) if v < lo || v > hi => Err(PolicyError::OutOfRange {
            scope,
            field,
            value: v,
            range,
        }),
        _ => Ok(()),
    }
}

impl PolicyLayer {
    /// Checks the ranges of what this layer sets.
    pub fn validate(&self, scope: LayerScope) -> Result<(), PolicyError> {
        let n = |v: Option<u32>| v.map(u64::from);
        check(scope, "fps", n(self.fps), 1, 30, "1-30")?;
        check(
            scope,
            "max_height",
            n(self.max_height),
            360,
            2160,
            "360-2160",
        )?;
        check(
            scope,
            "segment_seconds",
            n(self.segment_seconds),
            2,
            600,
            "2-600",
        )?;
        check(
            scope,
            "mask_delay_ms",
            n(self.mask_delay_ms),
            500,
            5000,
            "500-5000",
        )?;
        check(
            scope,
            "pause_max_seconds",
            n(self.pause_max_seconds),
            10,
            3600,
            "10-3600",
        )?;
        check(
            scope,
            "pause_daily_budget_seconds",
            n(self.pause_daily_budget_seconds),
            0,
            86_400,
            "0-86400",
        )?;
        check(
            scope,
            "api_mask_max_seconds",
            n(self.api_mask_max_seconds),
            10,
            14_400,
            "10-14400",
        )?;
        check(
            scope,
            "retention_voice_days",
            n(self.retention_voice_days),
            1,
            3650,
            "1-3650",
        )?;
        check(
            scope,
            "retention_screen_days",
            n(self.retention_screen_days),
            1,
            3650,
            "1-3650",
        )?;
        check(
            scope,
            "spool_quota_bytes",
            self.spool_quota_bytes,
            1 << 16,
            u64::MAX,
            ">= 65536",
        )?;
        if let Some(rules) = &self.mask_rules {
            validate_rules(rules).map_err(|source| PolicyError::Rules { scope, source })?;
        }
        if let Some(locked) = &self.locked {
            if scope != LayerScope::Organization {
                return Err(PolicyError::Inconsistent(format!(
                    "{scope:?} policy: locked is set in the organization layer only"
                )));
            }
            if let Some(unknown) = locked.iter().find(|f| !LAYER_FIELDS.contains(&f.as_str())) {
                return Err(PolicyError::Inconsistent(format!(
                    "locked: {unknown:?} is not a policy field"
                )));
            }
        }
        Ok(())
    }
}

impl Policy {
    /// Resolves organization defaults, then the team's, then the agent's overrides.
    pub fn resolve(
        organization: &PolicyLayer,
        team: Option<&PolicyLayer>,
        agent: Option<&PolicyLayer>,
    ) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        for (scope, layer) in [
            (LayerScope::Organization, Some(organization)),
            (LayerScope::Team, team),
            (LayerScope::Agent, agent),
        ] {
            let Some(layer) = layer else { continue };
            layer.validate(scope)?;
            overlay!(
                policy,
                layer,
                voice,
                screen,
                fps,
                max_height,
                segment_seconds,
                mask_delay_ms,
                dtmf_masking,
                focus_masking,
                pause_allowed,
                pause_max_seconds,
                pause_daily_budget_seconds,
                api_mask_max_seconds,
                retention_voice_days,
                retention_screen_days,
                upload_max_bytes_per_second,
                spool_quota_bytes,
                monitors,
            );
            if let Some(rules) = &layer.mask_rules {
                policy.mask_rules = rules.clone();
            }
        }
        if policy.retention_screen_days > policy.retention_voice_days {
            return Err(PolicyError::Inconsistent(format!(
                "screen is kept {} days, longer than voice ({} days)",
                policy.retention_screen_days, policy.retention_voice_days
            )));
        }
        Ok(policy)
    }
}

/// What the vault signs for one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyStatement {
    /// Always [`POLICY_KIND`].
    pub kind: String,
    /// The policy version (increases with every change that affects this device).
    pub version: u64,
    /// The device it is for: another device's policy is refused.
    pub device_id: Uuid,
    /// When the vault issued it.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: time::OffsetDateTime,
    /// The resolved policy.
    pub policy: Policy,
    /// The recording recipients (`age1…`) every blob is sealed to: the vault's own and any
    /// escrow recipients its operator set. Signed here so that the agent takes them from the
    /// vault and not from a file the recorded person can edit; empty in statements from vaults
    /// that predate it (the agent then keeps its enrollment's).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// Every key endorsement the vault made, oldest first (signed
    /// [`crate::key_rotation::KeyEndorsement`]s): how a device that trusts the key it enrolled
    /// with follows the vault's key rotations (`key_rotation::verify_policy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endorsements: Vec<String>,
}

/// A policy statement with the vault's signature.
pub type SignedPolicy = Signed<PolicyStatement>;

impl Document for PolicyStatement {
    const FIELD: &'static str = "statement";
    const NAME: &'static str = "policy";
    const SIGNER: KeyRole = KeyRole::VaultPolicy;

    fn check(&self) -> Result<(), String> {
        check_kind(&self.kind, POLICY_KIND, 0, 0)
    }
}

impl Signed<PolicyStatement> {
    /// Verifies a policy against the vault's policy key and this device's id.
    pub fn verify_for(
        bytes: &[u8],
        key: &VerifyingKey,
        device_id: Uuid,
    ) -> Result<Self, SignedError> {
        let signed = Self::verify(bytes, Some(key))?;
        if signed.document.device_id != device_id {
            return Err(SignedError::other_device::<PolicyStatement>(
                signed.document.device_id,
            ));
        }
        Ok(signed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignedErrorKind;
    use ed25519_dalek::SigningKey;

    #[test]
    fn layers_override_in_order_and_bad_values_name_their_field_and_layer() {
        let org = PolicyLayer {
            fps: Some(10),
            screen: Some(true),
            ..Default::default()
        };
        let team = PolicyLayer {
            screen: Some(false),
            ..Default::default()
        };
        let agent = PolicyLayer {
            fps: Some(2),
            ..Default::default()
        };
        let p = Policy::resolve(&org, Some(&team), Some(&agent)).unwrap();
        assert_eq!((p.fps, p.screen, p.voice), (2, false, true));
        let zero = PolicyLayer {
            fps: Some(0),
            ..Default::default()
        };
        let err = Policy::resolve(&org, Some(&zero), None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Team policy: fps = 0 is out of range (1-30)"
        );
        let unknown: Result<PolicyLayer, _> = serde_json::from_str(r#"{"fsp": 5}"#);
        assert!(unknown
            .unwrap_err()
            .to_string()
            .contains("unknown field `fsp`"));
        let longer_screen = PolicyLayer {
            retention_screen_days: Some(4000),
            ..Default::default()
        };
        assert!(Policy::resolve(&longer_screen, None, None).is_err());
        let inconsistent = PolicyLayer {
            retention_voice_days: Some(30),
            retention_screen_days: Some(60),
            ..Default::default()
        };
        assert!(matches!(
            Policy::resolve(&inconsistent, None, None),
            Err(PolicyError::Inconsistent(_))
        ));
        let nothing: PolicyLayer = serde_json::from_str(
            r#"{"mask_rules": [{"id": "x", "action": {"screen": "full", "audio": true, "tail_ms": 0}}]}"#,
        )
        .unwrap();
        assert_eq!(
            Policy::resolve(&org, None, Some(&nothing))
                .unwrap_err()
                .to_string(),
            "Agent policy: mask_rules: rule \"x\" matches nothing in particular: give it at least \
             one pattern"
        );
    }

    #[test]
    fn only_the_vault_key_and_the_addressed_device_verify() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let device = Uuid::new_v4();
        let statement = PolicyStatement {
            kind: POLICY_KIND.into(),
            version: 3,
            device_id: device,
            issued_at: time::OffsetDateTime::UNIX_EPOCH,
            policy: Policy::default(),
            recipients: Vec::new(),
            endorsements: Vec::new(),
        };
        let signed = SignedPolicy::sign(statement.clone(), &key).unwrap();
        let back =
            SignedPolicy::verify_for(signed.as_bytes(), &key.verifying_key(), device).unwrap();
        assert_eq!(back.document, statement);
        let text = String::from_utf8(signed.as_bytes().to_vec()).unwrap();
        let altered = text.replace("\"screen\":true", "\"screen\":false");
        assert_ne!(altered, text);
        assert_eq!(
            SignedPolicy::verify_for(altered.as_bytes(), &key.verifying_key(), device)
                .unwrap_err()
                .kind(),
            SignedErrorKind::BadSignature
        );
        let other = SigningKey::from_bytes(&[8; 32]);
        let foreign = SignedPolicy::sign(statement.clone(), &other).unwrap();
        assert_eq!(
            SignedPolicy::verify_for(foreign.as_bytes(), &key.verifying_key(), device)
                .unwrap_err()
                .kind(),
            SignedErrorKind::WrongSigner
        );
        assert!(matches!(
            SignedPolicy::verify_for(signed.as_bytes(), &key.verifying_key(), Uuid::new_v4()),
            Err(e) if e.kind() == SignedErrorKind::OtherDevice
        ));
    }
}
