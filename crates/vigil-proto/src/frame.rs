//! The body of a segment upload (`PUT /v1/segments/{session}/{sequence}`,
//! `Content-Type: application/vnd.vigil.segment`).
//!
//! ```text
//! body  = "VGS1" frame+
//! frame = tag:u8 length:u64-big-endian bytes[length]
//! tag   = 1 (signed manifest envelope) | 2 (sealed screen blob) | 3 (sealed voice blob)
//! ```
//! The manifest frame comes first, exactly once; each blob tag at most once; nothing follows the
//! last frame. The bytes are the spool's files, unchanged. A framed body (rather than multipart)
//! is trivial to write from the spool, to parse without buffering copies, and leaves no doubt
//! about where a part ends.

use crate::MediaKind;

/// The first four bytes of every body.
pub const MAGIC: &[u8; 4] = b"VGS1";
/// The media type of the body.
pub const CONTENT_TYPE: &str = "application/vnd.vigil.segment";

const TAG_MANIFEST: u8 = 1;
const TAG_SCREEN: u8 = 2;
const TAG_VOICE: u8 = 3;

/// A parsed upload body, borrowing from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentBody<'a> {
    /// The signed manifest envelope.
    pub manifest: &'a [u8],
    /// The sealed blobs, in body order.
    pub blobs: Vec<(MediaKind, &'a [u8])>,
}

/// Why a body is not a segment upload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The body does not start with [`MAGIC`].
    #[error("body does not start with {MAGIC:?}")]
    BadMagic,
    /// A frame's header or bytes are cut short.
    #[error("body is truncated at byte {0}")]
    Truncated(usize),
    /// A frame has an unknown tag.
    #[error("unknown frame tag {0}")]
    UnknownTag(u8),
    /// The first frame is not the manifest.
    #[error("the first frame must be the manifest")]
    ManifestNotFirst,
    /// A tag appears twice.
    #[error("frame tag {0} appears twice")]
    Duplicate(u8),
    /// There is no frame at all.
    #[error("body holds no manifest")]
    Empty,
}

impl<'a> SegmentBody<'a> {
    /// Parses a body.
    pub fn parse(body: &'a [u8]) -> Result<Self, FrameError> {
        let mut rest = body.strip_prefix(MAGIC).ok_or(FrameError::BadMagic)?;
        let mut manifest = None;
        let mut blobs = Vec::new();
        let mut seen = [false; 4];
        while !rest.is_empty() {
            let offset = body.len() - rest.len();
            if rest.len() < 9 {
                return Err(FrameError::Truncated(offset));
            }
            let tag = rest[0];
            let len = u64::from_be_bytes(rest[1..9].try_into().expect("8 bytes"));
            rest = &rest[9..];
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= rest.len())
                .ok_or(FrameError::Truncated(offset))?;
            let (bytes, after) = rest.split_at(len);
            rest = after;
            let kind = match tag {
                TAG_MANIFEST => None,
                TAG_SCREEN => Some(MediaKind::Screen),
                TAG_VOICE => Some(MediaKind::Voice),
                other => return Err(FrameError::UnknownTag(other)),
            };
            if std::mem::replace(&mut seen[tag as usize], true) {
                return Err(FrameError::Duplicate(tag));
            }
            match kind {
                None => manifest = Some(bytes),
                Some(_) if manifest.is_none() => return Err(FrameError::ManifestNotFirst),
                Some(kind) => blobs.push((kind, bytes)),
            }
        }
        Ok(Self {
            manifest: manifest.ok_or(FrameError::Empty)?,
            blobs,
        })
    }

    /// Writes a body (what the agent's uploader sends).
    pub fn encode(manifest: &[u8], blobs: &[(MediaKind, &[u8])]) -> Vec<u8> {
        let total = 4 + 9 + manifest.len() + blobs.iter().map(|(_, b)| 9 + b.len()).sum::<usize>();
        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(MAGIC);
        let mut frame = |tag: u8, bytes: &[u8]| {
            out.push(tag);
            out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        frame(TAG_MANIFEST, manifest);
        for (kind, bytes) in blobs {
            let tag = match kind {
                MediaKind::Screen => TAG_SCREEN,
                MediaKind::Voice => TAG_VOICE,
            };
            frame(tag, bytes);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip_and_bad_ones_are_refused() {
        let body = SegmentBody::encode(
            b"{manifest}",
            &[(MediaKind::Screen, b"s"), (MediaKind::Voice, b"vv")],
        );
        let parsed = SegmentBody::parse(&body).unwrap();
        assert_eq!(parsed.manifest, b"{manifest}");
        assert_eq!(
            parsed.blobs,
            vec![
                (MediaKind::Screen, b"s".as_slice()),
                (MediaKind::Voice, b"vv".as_slice())
            ]
        );
        assert_eq!(
            SegmentBody::parse(&body[..body.len() - 1]),
            Err(FrameError::Truncated(body.len() - 11))
        );
        assert_eq!(SegmentBody::parse(b"nope"), Err(FrameError::BadMagic));
        assert_eq!(SegmentBody::parse(b"VGS1"), Err(FrameError::Empty));
        let twice =
            SegmentBody::encode(b"m", &[(MediaKind::Voice, b"a"), (MediaKind::Voice, b"b")]);
        assert_eq!(SegmentBody::parse(&twice), Err(FrameError::Duplicate(3)));
        let mut no_manifest = MAGIC.to_vec();
        no_manifest.extend_from_slice(&[3, 0, 0, 0, 0, 0, 0, 0, 1, b'x']);
        assert_eq!(
            SegmentBody::parse(&no_manifest),
            Err(FrameError::ManifestNotFirst)
        );
        let mut huge = MAGIC.to_vec();
        huge.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(SegmentBody::parse(&huge), Err(FrameError::Truncated(4)));
    }
}
