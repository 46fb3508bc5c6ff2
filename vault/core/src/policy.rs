//! Recording policy on the vault side (issue 5): the three layers an administrator or a
//! supervisor sets (organization, team, device), their history, and the effective policy of
//! each device, signed with the vault's policy key for delivery ([`crate::policy_push`]).
//!
//! A change is validated against every policy it affects before it is stored: a team layer
//! that would make some device's policy invalid (screen kept longer than voice, say) is
//! refused with the field and the layer named. Every change is versioned and audited.

use std::collections::HashMap;

use ed25519_dalek::SigningKey;
use uuid::Uuid;
use vigil_proto::policy::{
    LayerScope, Policy, PolicyError, PolicyLayer, PolicyStatement, SignedPolicy, POLICY_KIND,
};

use vigil_vault_store::metadata::{DeviceRecord, MetadataStore, PolicyLayerRow, StoreError};

/// Which layer a change is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Organization defaults.
    Organization,
    /// A team's overrides (the team enrollment tokens name).
    Team(String),
    /// One device's overrides.
    Device(Uuid),
}

/// A scope text that is not `organization`, `team:<name>` or `device:<uuid>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a policy scope (organization, team:<name>, device:<uuid>)")]
pub struct ScopeError(pub String);

impl Scope {
    /// The stored form: `organization`, `team:<name>`, `device:<uuid>`.
    pub fn key(&self) -> String {
        match self {
            Scope::Organization => "organization".into(),
            Scope::Team(t) => format!("team:{t}"),
            Scope::Device(d) => format!("device:{d}"),
        }
    }

    /// Parses the stored form.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let err = || ScopeError(text.to_owned());
        match text.split_once(':') {
            None if text == "organization" => Ok(Scope::Organization),
            Some(("team", t)) if !t.trim().is_empty() && t.len() <= 128 => {
                Ok(Scope::Team(t.to_owned()))
            }
            Some(("device", d)) => Uuid::parse_str(d).map(Scope::Device).map_err(|_| err()),
            _ => Err(err()),
        }
    }

    /// Where this layer sits (for validation).
    pub fn layer_scope(&self) -> LayerScope {
        match self {
            Scope::Organization => LayerScope::Organization,
            Scope::Team(_) => LayerScope::Team,
            Scope::Device(_) => LayerScope::Agent,
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key())
    }
}

/// Why the stored policy could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PolicyReadError {
    /// A stored layer does not parse (edited behind the vault's back, or a newer vault).
    #[error("stored policy layer {scope} (version {version}) is unreadable: {detail}")]
    Corrupt {
        /// The layer.
        scope: String,
        /// Its version.
        version: i64,
        /// The parser's message.
        detail: String,
    },
    /// The stored layers no longer resolve for a device.
    #[error("device {device}: {source}")]
    Unresolvable {
        /// The device.
        device: Uuid,
        /// Why.
        source: PolicyError,
    },
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A layer as currently in force, with the version that set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentLayer {
    /// The version of its last change.
    pub version: i64,
    /// The layer.
    pub layer: PolicyLayer,
    /// Its stored row (author, reason, time).
    pub row: PolicyLayerRow,
}

/// Every layer in force, read at once: what the push service resolves devices from.
#[derive(Debug, Clone, Default)]
pub struct PolicySnapshot {
    /// The newest version of any layer (0: no policy was ever set).
    pub version: i64,
    /// Organization defaults.
    pub organization: Option<CurrentLayer>,
    /// Team layers by team name.
    pub teams: HashMap<String, CurrentLayer>,
    /// Device layers by device id.
    pub devices: HashMap<Uuid, CurrentLayer>,
}

impl PolicySnapshot {
    /// Reads every layer in force.
    pub fn load(store: &dyn MetadataStore) -> Result<Self, PolicyReadError> {
        let mut snapshot = PolicySnapshot::default();
        for row in store.policy_layers()? {
            let corrupt = |detail: String| PolicyReadError::Corrupt {
                scope: row.scope.clone(),
                version: row.version,
                detail,
            };
            let scope = Scope::parse(&row.scope).map_err(|e| corrupt(e.to_string()))?;
            let layer: PolicyLayer =
                serde_json::from_str(&row.document).map_err(|e| corrupt(e.to_string()))?;
            snapshot.version = snapshot.version.max(row.version);
            let current = CurrentLayer {
                version: row.version,
                layer,
                row,
            };
            match scope {
                Scope::Organization => snapshot.organization = Some(current),
                Scope::Team(t) => {
                    snapshot.teams.insert(t, current);
                }
                Scope::Device(d) => {
                    snapshot.devices.insert(d, current);
                }
            }
        }
        Ok(snapshot)
    }

    /// The layer of a scope, if one was ever set.
    pub fn layer(&self, scope: &Scope) -> Option<&CurrentLayer> {
        match scope {
            Scope::Organization => self.organization.as_ref(),
            Scope::Team(t) => self.teams.get(t),
            Scope::Device(d) => self.devices.get(d),
        }
    }

    /// The effective policy of a device and its version: the newest version among the layers
    /// it resolves from (0 with no layer at all: the built-in defaults).
    pub fn effective(&self, device: &DeviceRecord) -> Result<(u64, Policy), PolicyError> {
        let team = device.team.as_ref().and_then(|t| self.teams.get(t));
        let own = self.devices.get(&device.id);
        let empty = PolicyLayer::default();
        let policy = Policy::resolve(
            self.organization.as_ref().map_or(&empty, |l| &l.layer),
            team.map(|l| &l.layer),
            own.map(|l| &l.layer),
        )?;
        let version = [self.organization.as_ref(), team, own]
            .into_iter()
            .flatten()
            .map(|l| l.version)
            .max()
            .unwrap_or(0);
        Ok((version.max(0) as u64, policy))
    }
}

/// The effective policy of one device, read from the store (ingest fixes retention with it).
pub fn effective_for_device(
    store: &dyn MetadataStore,
    device: &DeviceRecord,
) -> Result<(u64, Policy), PolicyReadError> {
    PolicySnapshot::load(store)?
        .effective(device)
        .map_err(|source| PolicyReadError::Unresolvable {
            device: device.id,
            source,
        })
}

/// Signs a device's effective policy for delivery, with the recipients it seals to.
pub fn sign_for(
    key: &SigningKey,
    device: Uuid,
    version: u64,
    policy: Policy,
    recipients: Vec<String>,
    endorsements: Vec<String>,
) -> Result<SignedPolicy, vigil_proto::SignedError> {
    SignedPolicy::sign(
        PolicyStatement {
            kind: POLICY_KIND.into(),
            version,
            device_id: device,
            issued_at: crate::clock::now(),
            policy,
            recipients,
            endorsements,
        },
        key,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_bad_ones_are_named() {
        for s in [
            Scope::Organization,
            Scope::Team("support".into()),
            Scope::Device(Uuid::nil()),
        ] {
            assert_eq!(Scope::parse(&s.key()).unwrap(), s);
        }
        assert!(Scope::parse("team:").is_err());
        assert!(Scope::parse("device:42").is_err());
        assert!(Scope::parse("everyone").is_err());
    }
}
