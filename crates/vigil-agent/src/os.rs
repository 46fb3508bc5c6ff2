//! What the agent reads off the machine it records: the OS user, and its one text form of a
//! time.

/// The OS user being recorded (`USER`, `LOGNAME` or `USERNAME`; `unknown` when none is set).
pub(crate) fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

/// RFC 3339 text of a time (Unix seconds if it cannot be formatted).
pub(crate) fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
