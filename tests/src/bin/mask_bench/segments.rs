//! The recording's segments as the bench reads them: manifests and their clocks.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

/// One segment of the recording: its manifest and clocks.
pub struct Segment {
    pub sequence: u64,
    pub manifest: serde_json::Value,
    pub start_mono: u64,
    pub start_wall: i128,
    pub end_mono: u64,
}

impl Segment {
    /// A wall time (ns) on this segment's session clock.
    pub fn to_mono(&self, wall: i128) -> i128 {
        wall - self.start_wall + self.start_mono as i128
    }
}

fn parse_wall(v: &serde_json::Value) -> Result<i128> {
    let t = time::OffsetDateTime::parse(
        v.as_str().context("wall time")?,
        &time::format_description::well_known::Rfc3339,
    )?;
    Ok(t.unix_timestamp_nanos())
}

pub fn segments(session: &Path) -> Result<Vec<Segment>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(session)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(".manifest.json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|file| {
            let envelope: serde_json::Value = serde_json::from_slice(&std::fs::read(file)?)?;
            let m = envelope["manifest"].clone();
            Ok(Segment {
                sequence: m["sequence"].as_u64().context("sequence")?,
                start_mono: m["start"]["mono_ns"].as_u64().context("mono")?,
                start_wall: parse_wall(&m["start"]["wall"])?,
                end_mono: m["end"]["mono_ns"].as_u64().context("end")?,
                manifest: m,
            })
        })
        .collect()
}
