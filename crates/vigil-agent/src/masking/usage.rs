//! The day's pause and mask use, kept in the spool across sessions so that restarting the
//! recorder does not renew the daily pause budget. The recorded person can edit this file;
//! what they cannot hide is the heartbeat's report of the day's totals and the pause spans
//! in the signed manifests, which the vault holds.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// The file under the spool's `config/` folder.
const FILE: &str = "usage-today.json";

/// Seconds masked and paused on one UTC day.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct DailyUsage {
    /// The UTC day, `YYYY-MM-DD`.
    pub(crate) day: String,
    pub(crate) masked_seconds: u64,
    pub(crate) paused_seconds: u64,
    #[serde(skip)]
    saved: Option<(u64, u64)>,
}

fn today() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    )
}

impl DailyUsage {
    /// Today's use so far (zero on another day, or when the file is missing or unreadable).
    pub(crate) fn load(config_dir: &Path) -> Self {
        let day = today();
        std::fs::read(config_dir.join(FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice::<DailyUsage>(&bytes).ok())
            .filter(|u| u.day == day)
            .unwrap_or(DailyUsage {
                day,
                ..DailyUsage::default()
            })
    }

    /// Writes the use when it changed; a new UTC day starts from zero.
    pub(crate) fn save(&mut self, config_dir: &Path) {
        let day = today();
        if day != self.day {
            *self = DailyUsage {
                day,
                ..DailyUsage::default()
            };
        }
        let now = (self.masked_seconds, self.paused_seconds);
        if self.saved == Some(now) {
            return;
        }
        let Ok(json) = serde_json::to_vec(self) else {
            return;
        };
        let tmp = config_dir.join(format!("{FILE}.tmp"));
        let written = std::fs::create_dir_all(config_dir)
            .and_then(|_| std::fs::write(&tmp, json))
            .and_then(|_| std::fs::rename(&tmp, config_dir.join(FILE)));
        match written {
            Ok(()) => self.saved = Some(now),
            Err(e) => tracing::warn!(error = %e, "cannot keep today's pause use"),
        }
    }
}

/// Today's masked and paused seconds as kept in a spool's `config/` folder (zeros on another
/// day): what `vigil-agent upload` reports while no recording runs.
pub fn todays_usage(config_dir: &Path) -> (u64, u64) {
    let usage = DailyUsage::load(config_dir);
    (usage.masked_seconds, usage.paused_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_days_use_survives_a_restart_and_another_day_starts_at_zero() {
        let dir = tempfile::tempdir().unwrap();
        let mut usage = DailyUsage::load(dir.path());
        assert_eq!(usage.paused_seconds, 0);
        usage.paused_seconds = 120;
        usage.save(dir.path());
        assert_eq!(DailyUsage::load(dir.path()).paused_seconds, 120);
        let stale = r#"{"day":"2001-01-01","masked_seconds":5,"paused_seconds":9}"#;
        std::fs::write(dir.path().join(FILE), stale).unwrap();
        assert_eq!(DailyUsage::load(dir.path()).paused_seconds, 0);
    }
}
