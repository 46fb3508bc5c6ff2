//! Recording policy on the vault side (issue 5): the three layers an administrator or a
//! supervisor sets (organization, team, device), their history, and the effective policy of
//! each device, signed with the vault's policy key for delivery ([`crate::policy_push`]).
//!
//! A change is validated against every policy it affects before it is stored: a team layer
//! that would make some device's policy invalid (screen kept longer than voice, say) is
//! refused with the field and the layer named. Every change is versioned and audited.

use std::collections::{BTreeMap, HashMap};

use ed25519_dalek::SigningKey;
use uuid::Uuid;
use vigil_proto::policy::{
    LayerScope, Policy, PolicyError, PolicyLayer, PolicyStatement, SignedPolicy, POLICY_KIND,
};

use vigil_vault_store::metadata::{DeviceRecord, MetadataStore, PolicyLayerRow, StoreError};

/// Audit action: a policy layer changed.
pub const ACTION_POLICY_SET: &str = "policy.set";

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

    fn layer_scope(&self) -> LayerScope {
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

/// Why a policy change was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyChangeError {
    /// The document is not a policy layer (syntax, unknown field, wrong type).
    #[error("policy document for {scope}: {detail}")]
    Document {
        /// The layer.
        scope: Scope,
        /// The parser's message (names the field).
        detail: String,
    },
    /// The change would make a policy invalid.
    #[error("{0}")]
    Invalid(#[from] PolicyError),
    /// The change would make the policy of a device invalid.
    #[error("device {device}: {source}")]
    InvalidFor {
        /// The device whose policy would break.
        device: Uuid,
        /// Why.
        source: PolicyError,
    },
    /// A device layer for a device that does not exist.
    #[error("no device with id {0}")]
    UnknownDevice(Uuid),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
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

fn parse_layer(scope: &Scope, document: &str) -> Result<PolicyLayer, PolicyChangeError> {
    serde_json::from_str(document).map_err(|e| PolicyChangeError::Document {
        scope: scope.clone(),
        detail: e.to_string(),
    })
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

/// Signs a device's effective policy for delivery.
pub fn sign_for(
    key: &SigningKey,
    device: Uuid,
    version: u64,
    policy: Policy,
) -> Result<SignedPolicy, vigil_proto::SignedError> {
    SignedPolicy::sign(
        PolicyStatement {
            kind: POLICY_KIND.into(),
            version,
            device_id: device,
            issued_at: crate::clock::now(),
            policy,
        },
        key,
    )
}

/// A stored change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    /// The version it created.
    pub version: i64,
    /// Devices whose effective policy it changes (at the time of the change).
    pub devices_affected: usize,
}

/// Validates and stores a new document for a layer, then audits it (actor, scope, version,
/// the document's SHA-256, the stated reason).
pub fn set_layer(
    store: &dyn MetadataStore,
    scope: &Scope,
    document: &str,
    actor: &str,
    reason: Option<&str>,
) -> Result<PolicyChange, PolicyChangeError> {
    let layer = parse_layer(scope, document)?;
    layer.validate(scope.layer_scope())?;
    let devices = store.devices()?;
    if let Scope::Device(id) = scope {
        if !devices.iter().any(|d| d.id == *id) {
            return Err(PolicyChangeError::UnknownDevice(*id));
        }
    }
    // Every policy the change touches must still resolve.
    let mut proposed = PolicySnapshot::load(store).map_err(|e| match e {
        PolicyReadError::Store(s) => PolicyChangeError::Store(s),
        other => PolicyChangeError::Store(StoreError::Corrupt(other.to_string())),
    })?;
    let placeholder = CurrentLayer {
        version: i64::MAX,
        layer: layer.clone(),
        row: PolicyLayerRow {
            version: i64::MAX,
            scope: scope.key(),
            document: String::new(),
            author: String::new(),
            reason: None,
            at: 0,
        },
    };
    match scope {
        Scope::Organization => proposed.organization = Some(placeholder),
        Scope::Team(t) => {
            proposed.teams.insert(t.clone(), placeholder);
        }
        Scope::Device(d) => {
            proposed.devices.insert(*d, placeholder);
        }
    }
    // The layer on its own over the organization (a team without devices yet).
    let empty = PolicyLayer::default();
    let org = proposed.organization.as_ref().map_or(&empty, |l| &l.layer);
    match scope {
        Scope::Organization => Policy::resolve(org, None, None).map(drop)?,
        Scope::Team(_) => Policy::resolve(org, Some(&layer), None).map(drop)?,
        Scope::Device(_) => {}
    }
    let mut affected = 0;
    for device in devices.iter().filter(|d| d.revoked_at.is_none()) {
        let (version, _) =
            proposed
                .effective(device)
                .map_err(|source| PolicyChangeError::InvalidFor {
                    device: device.id,
                    source,
                })?;
        if version == i64::MAX as u64 {
            affected += 1;
        }
    }
    // Stored as given (normalised): the history shows exactly what was set.
    let normalised = serde_json::to_string(&layer).expect("a layer always serializes");
    let at = crate::clock::now().unix_timestamp();
    let version = store.put_policy_layer(&scope.key(), &normalised, actor, reason, at)?;
    crate::audit::record(
        store,
        actor,
        ACTION_POLICY_SET,
        Some(format!(
            "{scope} v{version} sha256:{}",
            vigil_proto::sha256_hex(normalised.as_bytes())
        )),
        reason.map(str::to_owned),
    )?;
    tracing::info!(%scope, version, devices = affected, "policy changed");
    Ok(PolicyChange {
        version,
        devices_affected: affected,
    })
}

/// The differences between two layers, one line per field: `field: old -> new` (`unset` for
/// a field the layer does not set).
pub fn diff(old: &PolicyLayer, new: &PolicyLayer) -> Vec<String> {
    let fields = |l: &PolicyLayer| -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(l) {
            Ok(serde_json::Value::Object(map)) => {
                map.into_iter().filter(|(_, v)| !v.is_null()).collect()
            }
            _ => BTreeMap::new(),
        }
    };
    let (a, b) = (fields(old), fields(new));
    let mut names: Vec<&String> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    let show = |v: Option<&serde_json::Value>| v.map_or("unset".to_owned(), |v| v.to_string());
    names
        .into_iter()
        .filter(|n| a.get(*n) != b.get(*n))
        .map(|n| format!("{n}: {} -> {}", show(a.get(n)), show(b.get(n))))
        .collect()
}

/// Parses a layer document for `diff` (same checks as a change, without storing).
pub fn parse_document(scope: &Scope, document: &str) -> Result<PolicyLayer, PolicyChangeError> {
    let layer = parse_layer(scope, document)?;
    layer.validate(scope.layer_scope())?;
    Ok(layer)
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

    #[test]
    fn diff_lists_changed_fields_only() {
        let old = PolicyLayer {
            screen: Some(true),
            fps: Some(5),
            ..Default::default()
        };
        let new = PolicyLayer {
            screen: Some(false),
            fps: Some(5),
            voice: Some(true),
            ..Default::default()
        };
        assert_eq!(
            diff(&old, &new),
            vec!["screen: true -> false", "voice: unset -> true"]
        );
    }
}
