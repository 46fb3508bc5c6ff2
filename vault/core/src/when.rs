//! Time arguments, as every command and route of the vault accepts them: a moment as RFC 3339
//! (`2026-11-29T08:00:00Z`) or Unix seconds (`1764403200`), a range of two optional moments,
//! and a length (`90s`, `30m`, `24h`, `7d`).

use std::fmt;
use std::str::FromStr;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Why a time argument was refused (the text as given, for the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhenError {
    /// Neither RFC 3339 nor Unix seconds (or outside the representable years).
    #[error("{0:?} is neither Unix seconds nor an RFC 3339 time (2026-11-29T08:00:00Z)")]
    Moment(String),
    /// A range that ends before it starts.
    #[error("the range ends ({to}) before it starts ({from})")]
    Reversed {
        /// The start as given.
        from: String,
        /// The end as given.
        to: String,
    },
    /// Not a whole number and one unit.
    #[error("{0:?} is not a duration (examples: 90s, 30m, 24h, 7d)")]
    Duration(String),
}

/// A moment given as RFC 3339 or Unix seconds. Parses from text (`FromStr`: command-line flags,
/// query strings, JSON bodies through the HTTP layer) or from Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct When(OffsetDateTime);

impl When {
    /// The moment `secs` seconds after the Unix epoch.
    pub fn from_unix(secs: i64) -> Result<Self, WhenError> {
        OffsetDateTime::from_unix_timestamp(secs)
            .map(Self)
            .map_err(|_| WhenError::Moment(secs.to_string()))
    }

    /// Unix seconds.
    pub fn unix(self) -> i64 {
        self.0.unix_timestamp()
    }

    /// The moment itself.
    pub fn datetime(self) -> OffsetDateTime {
        self.0
    }
}

impl From<OffsetDateTime> for When {
    fn from(t: OffsetDateTime) -> Self {
        Self(t)
    }
}

impl FromStr for When {
    type Err = WhenError;

    fn from_str(text: &str) -> Result<Self, WhenError> {
        let trimmed = text.trim();
        if let Ok(secs) = trimmed.parse::<i64>() {
            return Self::from_unix(secs);
        }
        OffsetDateTime::parse(trimmed, &Rfc3339)
            .map(Self)
            .map_err(|_| WhenError::Moment(text.to_owned()))
    }
}

impl fmt::Display for When {
    /// RFC 3339.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::clock::rfc3339(self.0))
    }
}

/// A range of time, open on either side: `from` inclusive, `to` exclusive where the caller
/// compares instants, and never reversed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TimeRange {
    from: Option<When>,
    to: Option<When>,
}

impl TimeRange {
    /// A range; refused when it ends before it starts.
    pub fn new(from: Option<When>, to: Option<When>) -> Result<Self, WhenError> {
        if let (Some(f), Some(t)) = (from, to) {
            if t < f {
                return Err(WhenError::Reversed {
                    from: f.to_string(),
                    to: t.to_string(),
                });
            }
        }
        Ok(Self { from, to })
    }

    /// Parses the two ends from optional texts (flags or query parameters).
    pub fn parse(from: Option<&str>, to: Option<&str>) -> Result<Self, WhenError> {
        let parse = |t: Option<&str>| t.map(str::parse::<When>).transpose();
        Self::new(parse(from)?, parse(to)?)
    }

    /// The start, if any.
    pub fn from(&self) -> Option<When> {
        self.from
    }

    /// The end, if any.
    pub fn to(&self) -> Option<When> {
        self.to
    }

    /// Both ends as Unix seconds.
    pub fn unix(&self) -> (Option<i64>, Option<i64>) {
        (self.from.map(When::unix), self.to.map(When::unix))
    }
}

/// Parses a length: `90s`, `30m`, `24h`, `7d` (a whole number and one unit).
pub fn parse_duration(text: &str) -> Result<time::Duration, WhenError> {
    let text = text.trim();
    let err = || WhenError::Duration(text.to_owned());
    let unit_at = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = text.split_at(unit_at);
    let n: i64 = number.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(err)?;
    Ok(time::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_parse_from_either_form() {
        let t: When = "1970-01-01T00:01:00Z".parse().unwrap();
        assert_eq!(t.unix(), 60);
        assert_eq!(
            " 1700000000 ".parse::<When>().unwrap().unix(),
            1_700_000_000
        );
        assert_eq!(
            When::from_unix(60).unwrap().to_string(),
            "1970-01-01T00:01:00Z"
        );
        for bad in ["yesterday", "", "2026-13-01T00:00:00Z", "99999999999999999"] {
            assert!(bad.parse::<When>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_are_never_reversed() {
        let r = TimeRange::parse(Some("60"), Some("1970-01-01T00:02:00Z")).unwrap();
        assert_eq!(r.unix(), (Some(60), Some(120)));
        assert_eq!(TimeRange::parse(None, None).unwrap(), TimeRange::default());
        assert!(matches!(
            TimeRange::parse(Some("120"), Some("60")),
            Err(WhenError::Reversed { .. })
        ));
        assert!(TimeRange::parse(Some("60"), Some("60")).is_ok());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90s").unwrap(), time::Duration::seconds(90));
        assert_eq!(parse_duration("24h").unwrap(), time::Duration::hours(24));
        assert_eq!(parse_duration("7d").unwrap(), time::Duration::days(7));
        assert_eq!(parse_duration("0s").unwrap(), time::Duration::ZERO);
        for bad in ["", "h", "5", "5w", "-5s", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
