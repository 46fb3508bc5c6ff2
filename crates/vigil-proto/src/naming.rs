//! The names of a segment's files in its session folder, the one rule the agent's spool writes
//! by and the vault stores, exports and checks by: the sequence number in six digits, then what
//! the file holds (`000042.manifest.json`, `000042.screen.age`, `000042.receipt.json`).

use crate::manifest::MediaKind;

/// The prefix every file of segment `sequence` starts with (`000042.`).
pub fn segment_prefix(sequence: u64) -> String {
    format!("{sequence:06}.")
}

/// The signed manifest's file.
pub fn manifest_file(sequence: u64) -> String {
    segment_file(sequence, "manifest.json")
}

/// A sealed blob's file (`000042.voice.age`).
pub fn blob_file(sequence: u64, kind: MediaKind) -> String {
    format!("{}{}.age", segment_prefix(sequence), kind.as_str())
}

/// The vault's signed receipt, as an evidence export holds it.
pub fn receipt_file(sequence: u64) -> String {
    segment_file(sequence, "receipt.json")
}

/// The tombstone of a redacted segment, as an evidence export holds it.
pub fn tombstone_file(sequence: u64) -> String {
    segment_file(sequence, "tombstone.json")
}

fn segment_file(sequence: u64, what: &str) -> String {
    format!("{}{what}", segment_prefix(sequence))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_by_sequence_and_say_what_they_hold() {
        assert_eq!(manifest_file(42), "000042.manifest.json");
        assert_eq!(blob_file(42, MediaKind::Screen), "000042.screen.age");
        assert_eq!(blob_file(1_000_000, MediaKind::Voice), "1000000.voice.age");
        assert_eq!(receipt_file(7), "000007.receipt.json");
        assert_eq!(tombstone_file(7), "000007.tombstone.json");
        assert!(blob_file(42, MediaKind::Voice).starts_with(&segment_prefix(42)));
    }
}
