//! Who may do what (brief §6, issue 5): the permissions, the roles that hold them (one table,
//! [`Role::permissions`]), and the access rule of every route of the API ([`ROUTES`]).
//!
//! The server refuses a request to a route whose rule is missing from [`ROUTES`] (fail closed),
//! and `vault/tests/roles.rs` calls every route as every role to check the table holds.
//!
//! | role | permissions |
//! |---|---|
//! | `agent` | none (agents are recorded; they do not use the console) |
//! | `supervisor` | search, play, policy, limited to the teams on the account |
//! | `qa_analyst` | search, play |
//! | `compliance` | search, play, download, delete, redact, hold, audit |
//! | `admin` | users, devices, policy, audit, search |
//!
//! Admins run the system and see what exists (search), but neither play nor export media:
//! listening to calls is for the people whose job it is, and every play is theirs to justify.

use std::fmt;
use std::str::FromStr;

/// Something an account may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// List and search recordings.
    Search,
    /// Play a recording in the console (streamed, never stored).
    Play,
    /// Download (export) a recording's media.
    Download,
    /// Delete recordings.
    Delete,
    /// Redact parts of recordings.
    Redact,
    /// Put recordings on legal hold and release them.
    Hold,
    /// Change recording policy.
    Policy,
    /// Read the audit log.
    Audit,
    /// Manage accounts.
    Users,
    /// Manage devices (enrollment, revocation, gaps).
    Devices,
    /// Read the service's metrics (`GET /metrics`): counts and gap figures, no names.
    Metrics,
    /// Change policy fields the organization locks, and weaken masking, recording or
    /// retention (a policy change that only compliance may make).
    RelaxPolicy,
}

impl Permission {
    /// Every permission.
    pub const ALL: [Permission; 12] = [
        Permission::Search,
        Permission::Play,
        Permission::Download,
        Permission::Delete,
        Permission::Redact,
        Permission::Hold,
        Permission::Policy,
        Permission::Audit,
        Permission::Users,
        Permission::Devices,
        Permission::Metrics,
        Permission::RelaxPolicy,
    ];

    /// The permission's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Search => "search",
            Permission::Play => "play",
            Permission::Download => "download",
            Permission::Delete => "delete",
            Permission::Redact => "redact",
            Permission::Hold => "hold",
            Permission::Policy => "policy",
            Permission::Audit => "audit",
            Permission::Users => "users",
            Permission::Devices => "devices",
            Permission::Metrics => "metrics",
            Permission::RelaxPolicy => "relax_policy",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role of a console account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Role {
    /// A recorded agent.
    Agent,
    /// A team supervisor: sees only the teams on the account.
    Supervisor,
    /// A quality analyst.
    QaAnalyst,
    /// Compliance (legal, risk).
    Compliance,
    /// Runs the system.
    Admin,
    /// A monitoring system's account (Prometheus with an API token): metrics and nothing else.
    Monitor,
}

/// A role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role {0:?} (agent, supervisor, qa_analyst, compliance, admin, monitor)")]
pub struct UnknownRole(pub String);

impl Role {
    /// Every role.
    pub const ALL: [Role; 6] = [
        Role::Agent,
        Role::Supervisor,
        Role::QaAnalyst,
        Role::Compliance,
        Role::Admin,
        Role::Monitor,
    ];

    /// The role's name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::QaAnalyst => "qa_analyst",
            Role::Compliance => "compliance",
            Role::Admin => "admin",
            Role::Monitor => "monitor",
        }
    }

    /// THE permission table: what each role may do.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Agent => &[],
            Role::Supervisor => &[Search, Play, Policy],
            Role::QaAnalyst => &[Search, Play],
            Role::Compliance => &[
                Search,
                Play,
                Download,
                Delete,
                Redact,
                Hold,
                Audit,
                RelaxPolicy,
            ],
            Role::Admin => &[Users, Devices, Policy, Audit, Search, Metrics],
            Role::Monitor => &[Metrics],
        }
    }

    /// Whether the role holds `permission`.
    pub fn can(self, permission: Permission) -> bool {
        self.permissions().contains(&permission)
    }

    /// Whether the role is limited to the teams on the account.
    pub fn team_scoped(self) -> bool {
        self == Role::Supervisor
    }
}

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s.trim())
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// The `__Host-vigil_session` cookie of a console login.
    Session,
    /// `Authorization: Bearer <API token>`.
    ApiToken,
    /// `Authorization: Basic` (name and password on every request).
    Basic,
}

impl AuthMethod {
    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Session => "session",
            AuthMethod::ApiToken => "api_token",
            AuthMethod::Basic => "basic",
        }
    }
}

/// An authenticated caller of the operator API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Account name.
    pub name: String,
    /// Its role.
    pub role: Role,
    /// The teams it is limited to (meaningful when [`Role::team_scoped`]).
    pub teams: Vec<String>,
    /// How it authenticated.
    pub via: AuthMethod,
    /// SHA-256 of the session cookie, when authenticated by session (for logout).
    pub session_sha256: Option<String>,
    /// The account must change its password before anything else (a first login, a reset).
    pub must_change_password: bool,
}

impl Principal {
    /// Whether the caller holds `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        self.role.can(permission)
    }

    /// The teams whose data the caller may see: `None` for every team.
    pub fn team_scope(&self) -> Option<&[String]> {
        self.role.team_scoped().then_some(self.teams.as_slice())
    }

    /// Whether data of `team` is within the caller's scope.
    pub fn sees_team(&self, team: Option<&str>) -> bool {
        match self.team_scope() {
            None => true,
            Some(teams) => team.is_some_and(|t| teams.iter().any(|x| x == t)),
        }
    }

    /// The actor named in audit records: `user:<name>`.
    pub fn actor(&self) -> String {
        format!("user:{}", self.name)
    }
}

/// What a route demands of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, metrics, the API description, login).
    Public,
    /// Anyone; the body carries its own proof (an enrollment token).
    EnrollToken,
    /// A device: the body is signed by an enrolled device's key, checked by the handler.
    DeviceSigned,
    /// Any authenticated account (its own session, its own media links).
    Authenticated,
    /// An account whose role holds this permission.
    Permission(Permission),
    /// An account whose role holds any of these permissions.
    AnyOf(&'static [Permission]),
}

impl Access {
    /// Whether an account of `role` passes this rule (`false` for the rules no account
    /// decides: public, enrollment token, device-signed).
    pub fn allows(self, role: Role) -> bool {
        match self {
            Access::Authenticated => true,
            Access::Permission(p) => role.can(p),
            Access::AnyOf(ps) => ps.iter().any(|p| role.can(*p)),
            Access::Public | Access::EnrollToken | Access::DeviceSigned => false,
        }
    }
}

/// The access rule of one route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRule {
    /// HTTP method, upper case.
    pub method: &'static str,
    /// The route's path as the router declares it (`{name}` for parameters).
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
}

const fn rule(method: &'static str, path: &'static str, access: Access) -> RouteRule {
    RouteRule {
        method,
        path,
        access,
    }
}

/// Who may read and change policy: editors (admins, supervisors within their teams) and those
/// who may relax it (compliance).
const POLICY_EDITORS: &[Permission] = &[Permission::Policy, Permission::RelaxPolicy];

/// Every route of the API with its access rule. The router's routes and this table must be
/// the same set (a unit test compares them; the server refuses a route without a rule).
pub const ROUTES: &[RouteRule] = &[
    rule("GET", "/health", Access::Public),
    rule("GET", "/metrics", Access::Permission(Permission::Metrics)),
    rule("GET", "/openapi.json", Access::Public),
    rule("POST", "/v1/enroll", Access::EnrollToken),
    rule("POST", "/v1/heartbeat", Access::DeviceSigned),
    rule("POST", "/v1/devices/rekey", Access::DeviceSigned),
    rule("POST", "/v1/policy/poll", Access::DeviceSigned),
    rule("GET", "/v1/policy/{scope}", Access::AnyOf(POLICY_EDITORS)),
    rule("PUT", "/v1/policy/{scope}", Access::AnyOf(POLICY_EDITORS)),
    rule("GET", "/v1/agents", Access::Permission(Permission::Search)),
    rule(
        "GET",
        "/v1/agents/events",
        Access::Permission(Permission::Search),
    ),
    rule(
        "PUT",
        "/v1/segments/{session}/{sequence}",
        Access::DeviceSigned,
    ),
    rule("GET", "/v1/gaps", Access::Permission(Permission::Devices)),
    rule(
        "GET",
        "/v1/devices",
        Access::Permission(Permission::Devices),
    ),
    rule("GET", "/", Access::Public),
    rule("GET", "/app.js", Access::Public),
    rule("GET", "/app.css", Access::Public),
    rule("POST", "/v1/login", Access::Public),
    rule("POST", "/v1/logout", Access::Authenticated),
    rule("GET", "/v1/me", Access::Authenticated),
    rule("POST", "/v1/password", Access::Authenticated),
    rule("POST", "/v1/mfa/totp", Access::Authenticated),
    rule("POST", "/v1/mfa/totp/confirm", Access::Authenticated),
    rule("GET", "/v1/users", Access::Permission(Permission::Users)),
    rule("POST", "/v1/users", Access::Permission(Permission::Users)),
    rule(
        "PATCH",
        "/v1/users/{name}",
        Access::Permission(Permission::Users),
    ),
    rule("GET", "/v1/grants", Access::Permission(Permission::Users)),
    rule(
        "POST",
        "/v1/grants/{id}/approve",
        Access::Permission(Permission::Users),
    ),
    rule(
        "POST",
        "/v1/grants/{id}/reject",
        Access::Permission(Permission::Users),
    ),
    rule("GET", "/v1/audit", Access::Permission(Permission::Audit)),
    rule(
        "GET",
        "/v1/recordings",
        Access::Permission(Permission::Search),
    ),
    rule(
        "POST",
        "/v1/recordings/{session}/{sequence}/play",
        Access::Permission(Permission::Play),
    ),
    rule(
        "POST",
        "/v1/recordings/{session}/{sequence}/download",
        Access::Permission(Permission::Download),
    ),
    rule("GET", "/v1/media/{link}", Access::Authenticated),
    rule(
        "DELETE",
        "/v1/recordings/{session}",
        Access::Permission(Permission::Delete),
    ),
    rule(
        "GET",
        "/v1/recordings/{session}",
        Access::Permission(Permission::Search),
    ),
    rule("GET", "/v1/holds", Access::Permission(Permission::Hold)),
    rule("POST", "/v1/holds", Access::Permission(Permission::Hold)),
    rule(
        "POST",
        "/v1/holds/{id}/release",
        Access::Permission(Permission::Hold),
    ),
    rule(
        "POST",
        "/v1/redactions",
        Access::Permission(Permission::Redact),
    ),
    rule(
        "GET",
        "/v1/tombstones/{segment}",
        Access::AnyOf(&[Permission::Redact, Permission::Audit]),
    ),
];

/// The rule of a route, by method and declared path.
pub fn route_rule(method: &str, path: &str) -> Option<&'static RouteRule> {
    ROUTES
        .iter()
        .find(|r| r.method.eq_ignore_ascii_case(method) && r.path == path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn the_permission_table_separates_duties() {
        assert!(Role::Agent.permissions().is_empty());
        assert!(Role::QaAnalyst.can(Permission::Play));
        assert!(!Role::QaAnalyst.can(Permission::Download));
        assert!(Role::Compliance.can(Permission::Download));
        assert!(!Role::Admin.can(Permission::Play));
        assert!(Role::Admin.can(Permission::Users));
        // Every permission is held by someone.
        for p in Permission::ALL {
            assert!(Role::ALL.iter().any(|r| r.can(p)), "{p} is held by no role");
        }
    }

    /// The table spelled out cell by cell, so a change to it is a deliberate change here too.
    #[test]
    fn the_permission_table_is_the_documented_one() {
        let expected: [(Role, &str); 6] = [
            (Role::Agent, ""),
            (Role::Supervisor, "search play policy"),
            (Role::QaAnalyst, "search play"),
            (
                Role::Compliance,
                "search play download delete redact hold audit relax_policy",
            ),
            (Role::Admin, "search policy audit users devices metrics"),
            (Role::Monitor, "metrics"),
        ];
        for (role, names) in expected {
            let held: Vec<&str> = Permission::ALL
                .into_iter()
                .filter(|p| role.can(*p))
                .map(Permission::as_str)
                .collect();
            assert_eq!(held.join(" "), names, "{role}");
        }
    }

    #[test]
    fn routes_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert!(a.method != b.method || a.path != b.path, "{a:?} twice");
            }
        }
    }

    #[test]
    fn supervisors_see_only_their_teams() {
        let p = Principal {
            name: "sue".into(),
            role: Role::Supervisor,
            teams: vec!["north".into()],
            via: AuthMethod::Session,
            session_sha256: None,
            must_change_password: false,
        };
        assert!(p.sees_team(Some("north")));
        assert!(!p.sees_team(Some("south")));
        assert!(!p.sees_team(None));
        let analyst = Principal {
            role: Role::QaAnalyst,
            ..p
        };
        assert!(analyst.sees_team(Some("south")));
    }
}
