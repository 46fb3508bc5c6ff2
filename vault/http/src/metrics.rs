//! Counters of the server, served as Prometheus text at `GET /metrics`.
//!
//! Every refused upload is counted under its cause (the [`vigil_vault_core::ingest::IngestError::code`], or
//! `body_too_large` / `body_unreadable` when the body never reached ingest).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    stored: AtomicU64,
    stored_bytes: AtomicU64,
    duplicates: AtomicU64,
    enrollments: AtomicU64,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    enroll_refused: Mutex<BTreeMap<&'static str, u64>>,
    heartbeats: AtomicU64,
    heartbeats_refused: Mutex<BTreeMap<&'static str, u64>>,
    /// The last backlog each device reported.
    backlogs: Mutex<BTreeMap<uuid::Uuid, vigil_proto::api::Backlog>>,
    /// The gap figures of the last scrape, and when they were computed.
    gaps: Mutex<Option<(Instant, GapFigures)>>,
}

/// How long computed gap figures serve scrapes (a gap report reads every session).
pub const GAP_FIGURES_LIFETIME: Duration = Duration::from_secs(15);

/// Gap figures computed at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct GapFigures {
    /// Missing segments the agents still hold.
    pub in_transit: u64,
    /// Missing segments the agents no longer hold.
    pub lost: u64,
    /// Missing segments of sessions without an agent report.
    pub unreported: u64,
}

fn bump(map: &Mutex<BTreeMap<&'static str, u64>>, cause: &'static str) {
    *map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(cause)
        .or_default() += 1;
}

impl Metrics {
    /// The gap figures computed less than [`GAP_FIGURES_LIFETIME`] ago, if any.
    pub fn cached_gaps(&self) -> Option<GapFigures> {
        let cached = *self.gaps.lock().unwrap_or_else(|e| e.into_inner());
        cached
            .filter(|(at, _)| at.elapsed() < GAP_FIGURES_LIFETIME)
            .map(|(_, figures)| figures)
    }

    /// Keeps freshly computed gap figures for the next scrapes.
    pub fn cache_gaps(&self, figures: GapFigures) {
        *self.gaps.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), figures));
    }

    /// A segment was stored; `bytes` is the upload body's size.
    pub fn stored(&self, bytes: usize) {
        self.stored.fetch_add(1, Ordering::Relaxed);
        self.stored_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// A segment was uploaded again and answered with its first receipt.
    pub fn duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// An upload was refused.
    pub fn rejected(&self, cause: &'static str) {
        bump(&self.rejected, cause);
    }

    /// A device enrolled.
    pub fn enrolled(&self) {
        self.enrollments.fetch_add(1, Ordering::Relaxed);
    }

    /// An enrollment was refused.
    pub fn enroll_refused(&self, cause: &'static str) {
        bump(&self.enroll_refused, cause);
    }

    /// A heartbeat was accepted.
    pub fn heartbeat(&self, device: uuid::Uuid, backlog: vigil_proto::api::Backlog) {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
        self.backlogs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(device, backlog);
    }

    /// A heartbeat was refused.
    pub fn heartbeat_refused(&self, cause: &'static str) {
        bump(&self.heartbeats_refused, cause);
    }

    /// The exposition with the gap gauges (computed by the caller from the store).
    pub fn render_with_gaps(&self, gaps: GapFigures) -> String {
        let mut out = self.render();
        let gauge = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        };
        gauge(
            &mut out,
            "vigil_vault_gap_segments_in_transit",
            "Missing segments that agents report still holding.",
            gaps.in_transit,
        );
        gauge(
            &mut out,
            "vigil_vault_gap_segments_lost",
            "Missing segments that agents no longer hold.",
            gaps.lost,
        );
        gauge(
            &mut out,
            "vigil_vault_gap_segments_unreported",
            "Missing segments of sessions no agent reported on.",
            gaps.unreported,
        );
        out
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
            );
        };
        let labelled =
            |out: &mut String, name: &str, help: &str, map: &Mutex<BTreeMap<&'static str, u64>>| {
                let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} counter\n");
                for (cause, n) in map.lock().unwrap_or_else(|e| e.into_inner()).iter() {
                    let _ = writeln!(out, "{name}{{cause=\"{cause}\"}} {n}");
                }
            };
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        counter(
            &mut out,
            "vigil_vault_segments_stored_total",
            "Segments verified and stored.",
            get(&self.stored),
        );
        counter(
            &mut out,
            "vigil_vault_segment_bytes_total",
            "Bytes of stored segment uploads.",
            get(&self.stored_bytes),
        );
        counter(
            &mut out,
            "vigil_vault_segments_duplicate_total",
            "Uploads of already stored segments (answered with the first receipt).",
            get(&self.duplicates),
        );
        labelled(
            &mut out,
            "vigil_vault_segments_rejected_total",
            "Refused segment uploads, by cause.",
            &self.rejected,
        );
        counter(
            &mut out,
            "vigil_vault_enrollments_total",
            "Successful enrollments.",
            get(&self.enrollments),
        );
        labelled(
            &mut out,
            "vigil_vault_enrollments_refused_total",
            "Refused enrollments, by cause.",
            &self.enroll_refused,
        );
        counter(
            &mut out,
            "vigil_vault_heartbeats_total",
            "Accepted agent heartbeats.",
            get(&self.heartbeats),
        );
        labelled(
            &mut out,
            "vigil_vault_heartbeats_refused_total",
            "Refused agent heartbeats, by cause.",
            &self.heartbeats_refused,
        );
        let backlogs = self.backlogs.lock().unwrap_or_else(|e| e.into_inner());
        let now = time::OffsetDateTime::now_utc();
        let oldest = backlogs
            .values()
            .filter_map(|b| b.oldest)
            .map(|t| (now - t).whole_seconds().max(0) as u64)
            .max()
            .unwrap_or(0);
        for (name, help, value) in [
            (
                "vigil_vault_agent_backlog_segments",
                "Segments waiting in agents' spools, as last reported.",
                backlogs.values().map(|b| b.segments).sum::<u64>(),
            ),
            (
                "vigil_vault_agent_backlog_bytes",
                "Bytes waiting in agents' spools, as last reported.",
                backlogs.values().map(|b| b.bytes).sum::<u64>(),
            ),
            (
                "vigil_vault_agent_backlog_oldest_seconds",
                "Age of the oldest segment waiting in any agent's spool.",
                oldest,
            ),
            (
                "vigil_vault_agents_reporting",
                "Devices that sent a heartbeat since the vault started.",
                backlogs.len() as u64,
            ),
        ] {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}\n"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_as_prometheus_text() {
        let m = Metrics::default();
        m.stored(100);
        m.stored(50);
        m.duplicate();
        m.rejected("bad_signature");
        m.rejected("bad_signature");
        m.rejected("bad_id");
        let text = m.render();
        assert!(text.contains("vigil_vault_segments_stored_total 2\n"));
        assert!(text.contains("vigil_vault_segment_bytes_total 150\n"));
        assert!(text.contains("vigil_vault_segments_rejected_total{cause=\"bad_signature\"} 2\n"));
        assert!(text.contains("vigil_vault_segments_rejected_total{cause=\"bad_id\"} 1\n"));
        assert!(text.contains("# TYPE vigil_vault_enrollments_refused_total counter\n"));
    }
}
