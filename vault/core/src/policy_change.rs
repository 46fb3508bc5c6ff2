//! Changing recording policy: a layer is validated against every policy it affects, checked
//! against the organization's locks and against weakening (reserved to accounts that may relax
//! policy: compliance), then stored, versioned and audited. A refused attempt is audited too.

use std::collections::BTreeMap;

use uuid::Uuid;
use vigil_proto::policy::{Policy, PolicyError, PolicyLayer};
use vigil_proto::policy_locks::{locked_changes, unlocked, weakened};
use vigil_vault_store::metadata::{DeviceRecord, MetadataStore, PolicyLayerRow, StoreError};

use crate::policy::{CurrentLayer, PolicyReadError, PolicySnapshot, Scope};

/// Audit action: a policy layer changed.
pub const ACTION_POLICY_SET: &str = "policy.set";
/// Audit action: a policy change was refused for touching locked or protective settings.
pub const ACTION_POLICY_CHANGE_REFUSED: &str = "policy.change_refused";

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
    /// The change touches fields the organization locks, or weakens masking, recording or
    /// retention, and the editor may not relax policy.
    #[error(
        "{scope}: {} {} reserved to accounts that may relax policy (compliance): locked by the \
         organization, or weakening masking, recording or retention",
        fields.join(", "),
        if fields.len() == 1 { "is" } else { "are" }
    )]
    Reserved {
        /// The layer.
        scope: Scope,
        /// The fields, by name.
        fields: Vec<String>,
    },
    /// A device layer for a device that does not exist.
    #[error("no device with id {0}")]
    UnknownDevice(Uuid),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn parse_layer(scope: &Scope, document: &str) -> Result<PolicyLayer, PolicyChangeError> {
    serde_json::from_str(document).map_err(|e| PolicyChangeError::Document {
        scope: scope.clone(),
        detail: e.to_string(),
    })
}

/// A stored change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyChange {
    /// The version it created.
    pub version: i64,
    /// Devices whose effective policy it changes (at the time of the change).
    pub devices_affected: usize,
}

/// Who changes policy: the actor the audit log names, and whether they may relax policy (the
/// `relax_policy` permission: compliance; the command line, which holds the data folder).
#[derive(Debug, Clone, Copy)]
pub struct Editor<'a> {
    /// `user:<name>` or `cli:…`.
    pub actor: &'a str,
    /// May touch locked fields and weaken masking, recording or retention.
    pub may_relax: bool,
}

/// Validates, checks and stores a layer (see the module documentation).
pub fn set_layer(
    store: &dyn MetadataStore,
    scope: &Scope,
    document: &str,
    editor: Editor<'_>,
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
    let current = PolicySnapshot::load(store).map_err(|e| match e {
        PolicyReadError::Store(s) => PolicyChangeError::Store(s),
        other => PolicyChangeError::Store(StoreError::Corrupt(other.to_string())),
    })?;
    let proposed = with_layer(&current, scope, &layer);
    let affected = check_resolves(&proposed, scope, &layer, &devices)?;
    let reserved = reserved_fields(&current, &proposed, scope, &layer, &devices);
    if !reserved.is_empty() && !editor.may_relax {
        crate::audit::record(
            store,
            editor.actor,
            ACTION_POLICY_CHANGE_REFUSED,
            Some(format!("{scope}: {}", reserved.join(", "))),
            reason.map(str::to_owned),
        )?;
        tracing::warn!(%scope, fields = %reserved.join(","), actor = editor.actor, "policy change refused");
        return Err(PolicyChangeError::Reserved {
            scope: scope.clone(),
            fields: reserved,
        });
    }
    // Stored as given (normalised): the history shows exactly what was set.
    let normalised = serde_json::to_string(&layer).expect("a layer always serializes");
    let at = crate::clock::now().unix_timestamp();
    let version = store.put_policy_layer(&scope.key(), &normalised, editor.actor, reason, at)?;
    let relaxed = if reserved.is_empty() {
        String::new()
    } else {
        format!(" relaxes {}", reserved.join(","))
    };
    crate::audit::record(
        store,
        editor.actor,
        ACTION_POLICY_SET,
        Some(format!(
            "{scope} v{version} sha256:{}{relaxed}",
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

/// `current` with `layer` in place at `scope`, marked with version `i64::MAX` (so the devices
/// it affects can be told apart).
fn with_layer(current: &PolicySnapshot, scope: &Scope, layer: &PolicyLayer) -> PolicySnapshot {
    let mut proposed = current.clone();
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
    proposed
}

/// Every policy the change touches must still resolve; returns how many devices it affects.
fn check_resolves(
    proposed: &PolicySnapshot,
    scope: &Scope,
    layer: &PolicyLayer,
    devices: &[DeviceRecord],
) -> Result<usize, PolicyChangeError> {
    // The layer on its own over the organization (a team without devices yet).
    let empty = PolicyLayer::default();
    let org = proposed.organization.as_ref().map_or(&empty, |l| &l.layer);
    match scope {
        Scope::Organization => Policy::resolve(org, None, None).map(drop)?,
        Scope::Team(_) => Policy::resolve(org, Some(layer), None).map(drop)?,
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
    Ok(affected)
}

/// The fields a change touches that only an editor who may relax policy can: fields the
/// organization locks (changed below it, or unlocked), and settings it weakens for the scope
/// itself or for any device it affects.
fn reserved_fields(
    current: &PolicySnapshot,
    proposed: &PolicySnapshot,
    scope: &Scope,
    layer: &PolicyLayer,
    devices: &[DeviceRecord],
) -> Vec<String> {
    let empty = PolicyLayer::default();
    let org = current.organization.as_ref().map_or(&empty, |l| &l.layer);
    let old = current.layer(scope).map(|l| &l.layer);
    let mut fields: Vec<String> = match scope {
        Scope::Organization => unlocked(org, layer),
        _ => locked_changes(org, old, layer),
    };
    let mut weaker = |before: Result<Policy, PolicyError>, after: Result<Policy, PolicyError>| {
        if let (Ok(before), Ok(after)) = (before, after) {
            for field in weakened(&before, &after) {
                if !fields.iter().any(|f| f == field) {
                    fields.push(field.to_owned());
                }
            }
        }
    };
    match scope {
        Scope::Organization => weaker(
            Policy::resolve(org, None, None),
            Policy::resolve(layer, None, None),
        ),
        Scope::Team(_) => weaker(
            Policy::resolve(org, old, None),
            Policy::resolve(org, Some(layer), None),
        ),
        Scope::Device(_) => {}
    }
    for device in devices.iter().filter(|d| d.revoked_at.is_none()) {
        if let Ok((version, after)) = proposed.effective(device) {
            if version == i64::MAX as u64 {
                weaker(current.effective(device).map(|(_, p)| p), Ok(after));
            }
        }
    }
    fields
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
