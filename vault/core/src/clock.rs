//! The vault's clock and its one text form of a time.

/// Current time in UTC (one place, so tests and code agree on the clock).
pub fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// RFC 3339 text of a time, for storage and receipts.
pub fn rfc3339(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}
