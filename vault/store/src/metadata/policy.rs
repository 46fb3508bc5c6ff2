//! Recording policy as stored: one row per change of a layer (organization, a team, a device),
//! never updated, so the history of every layer is kept. Versions are global and increase
//! with every change; a device's policy version is the newest version of the layers it
//! resolves from ([`crate::policy`]).

use super::StoreError;

/// A layer's scope as stored: `organization`, `team:<name>` or `device:<uuid>`.
pub type ScopeKey = String;

/// One change of a policy layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLayerRow {
    /// The global version this change created.
    pub version: i64,
    /// The layer it changed.
    pub scope: ScopeKey,
    /// The layer's new document (a [`vigil_proto::policy::PolicyLayer`] as JSON).
    pub document: String,
    /// Who changed it (`user:<name>`, `cli:<os user>`).
    pub author: String,
    /// The reason they gave.
    pub reason: Option<String>,
    /// When, Unix seconds.
    pub at: i64,
}

/// The policy operations of the metadata store.
pub trait PolicyStore {
    /// Stores a new document for a layer under the next global version, atomically, and
    /// returns that version.
    fn put_policy_layer(
        &self,
        scope: &str,
        document: &str,
        author: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<i64, StoreError>;
    /// The current document of every layer (its newest row), by scope.
    fn policy_layers(&self) -> Result<Vec<PolicyLayerRow>, StoreError>;
    /// Every change of one layer (or of all), oldest first.
    fn policy_history(&self, scope: Option<&str>) -> Result<Vec<PolicyLayerRow>, StoreError>;
    /// The newest version (0 when no policy was ever set): a cheap check for changes.
    fn policy_version(&self) -> Result<i64, StoreError>;
}

impl<T: PolicyStore + ?Sized> PolicyStore for Box<T> {
    fn put_policy_layer(
        &self,
        scope: &str,
        document: &str,
        author: &str,
        reason: Option<&str>,
        at: i64,
    ) -> Result<i64, StoreError> {
        (**self).put_policy_layer(scope, document, author, reason, at)
    }
    fn policy_layers(&self) -> Result<Vec<PolicyLayerRow>, StoreError> {
        (**self).policy_layers()
    }
    fn policy_history(&self, scope: Option<&str>) -> Result<Vec<PolicyLayerRow>, StoreError> {
        (**self).policy_history(scope)
    }
    fn policy_version(&self) -> Result<i64, StoreError> {
        (**self).policy_version()
    }
}
