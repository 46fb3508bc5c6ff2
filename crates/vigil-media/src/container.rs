//! Matroska in memory: a seekable in-memory sink for the muxers, probing of media held in
//! memory, and the joining of a segment's screen and voice blobs into one playable file.

use std::io::{Cursor, Seek, SeekFrom, Write};
use std::sync::{Arc, Mutex};

use ffmpeg::format::context::StreamIo;
use ffmpeg_next as ffmpeg;

use crate::{MediaError, MediaErrorKind};

/// A growable in-memory file shared between the muxer (through `StreamIo`) and its owner, so
/// the bytes can be taken back after the muxer is dropped. Plaintext never goes to disk.
#[derive(Clone, Default)]
pub(crate) struct MemoryFile(Arc<Mutex<Cursor<Vec<u8>>>>);

impl MemoryFile {
    pub(crate) fn take(&self) -> Vec<u8> {
        std::mem::take(self.0.lock().expect("memory file lock").get_mut())
    }
}

impl Write for MemoryFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("memory file lock").write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for MemoryFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.0.lock().expect("memory file lock").seek(pos)
    }
}

/// The container of every segment file, as FFmpeg and the manifest name it.
pub(crate) const CONTAINER: &str = "matroska";

/// Opens a Matroska muxer writing into memory.
pub(crate) fn memory_output(
    file: &MemoryFile,
) -> Result<ffmpeg::format::context::Output, MediaError> {
    let io = StreamIo::from_write_seek(file.clone())
        .map_err(|e| MediaError::new(MediaErrorKind::Mux, e))?;
    ffmpeg::format::output_to_stream(io, None, Some(CONTAINER))
        .map_err(|e| MediaError::new(MediaErrorKind::CodecMissing, format!("matroska muxer: {e}")))
}

fn memory_input(bytes: Vec<u8>) -> Result<ffmpeg::format::context::Input, MediaError> {
    ffmpeg::init().map_err(|e| MediaError::new(MediaErrorKind::Demux, e))?;
    let io = StreamIo::from_read_seek(Cursor::new(bytes))
        .map_err(|e| MediaError::new(MediaErrorKind::Demux, e))?;
    ffmpeg::format::input_from_stream(io, None, None)
        .map_err(|e| MediaError::new(MediaErrorKind::Demux, e))
}

/// One stream of probed media.
#[derive(Debug, Clone)]
pub struct ProbeStream {
    /// `video` or `audio`.
    pub medium: String,
    /// Codec name (`h264`, `opus`).
    pub codec: String,
    /// Width (video).
    pub width: u32,
    /// Height (video).
    pub height: u32,
    /// Track title.
    pub title: Option<String>,
    /// Packets in the stream.
    pub packets: u64,
    /// First and last packet timestamps, seconds.
    pub first_pts: f64,
    /// Timestamp of the last packet plus its duration, seconds.
    pub end_pts: f64,
}

/// What a container in memory holds.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// Its streams in order.
    pub streams: Vec<ProbeStream>,
}

/// Reads a container held in memory and describes its streams (used by `verify` and tests).
pub fn probe(bytes: Vec<u8>) -> Result<ProbeReport, MediaError> {
    let mut input = memory_input(bytes)?;
    let mut streams: Vec<ProbeStream> = input
        .streams()
        .map(|s| {
            let params = s.parameters();
            let medium = format!("{:?}", params.medium()).to_lowercase();
            let (width, height) = ffmpeg::codec::context::Context::from_parameters(params.clone())
                .ok()
                .and_then(|c| c.decoder().video().ok())
                .map(|v| (v.width(), v.height()))
                .unwrap_or((0, 0));
            ProbeStream {
                medium,
                codec: params.id().name().to_string(),
                width,
                height,
                title: s.metadata().get("title").map(str::to_string),
                packets: 0,
                first_pts: f64::MAX,
                end_pts: 0.0,
            }
        })
        .collect();
    let bases: Vec<f64> = input.streams().map(|s| f64::from(s.time_base())).collect();
    for (stream, packet) in input.packets() {
        let i = stream.index();
        let tb = bases[i];
        let st = &mut streams[i];
        st.packets += 1;
        if let Some(pts) = packet.pts() {
            st.first_pts = st.first_pts.min(pts as f64 * tb);
            st.end_pts = st.end_pts.max((pts + packet.duration()) as f64 * tb);
        }
    }
    Ok(ProbeReport { streams })
}

/// Remuxes a segment's screen and voice blobs (plaintext, in memory) into one Matroska file
/// with all tracks, for playback in any player.
pub fn join_tracks(parts: Vec<Vec<u8>>) -> Result<Vec<u8>, MediaError> {
    let out_file = MemoryFile::default();
    let mut inputs = parts
        .into_iter()
        .map(memory_input)
        .collect::<Result<Vec<_>, _>>()?;
    let mut out = memory_output(&out_file)?;
    let mut mapping = Vec::new();
    for (n, input) in inputs.iter().enumerate() {
        for s in input.streams() {
            let mut os = out
                .add_stream(ffmpeg::encoder::find(ffmpeg::codec::Id::None))
                .map_err(|e| MediaError::new(MediaErrorKind::Mux, e))?;
            os.set_parameters(s.parameters());
            os.set_metadata(s.metadata().to_owned());
            // Let the muxer choose the codec tag.
            mapping.push(((n, s.index()), os.index(), s.time_base()));
        }
    }
    out.write_header()
        .map_err(|e| MediaError::new(MediaErrorKind::Mux, e))?;
    for (n, input) in inputs.iter_mut().enumerate() {
        for (stream, mut packet) in input.packets() {
            let Some(&(_, out_index, in_tb)) = mapping.iter().find(|m| m.0 == (n, stream.index()))
            else {
                continue;
            };
            let out_tb = out
                .stream(out_index)
                .map(|s| s.time_base())
                .unwrap_or(in_tb);
            packet.rescale_ts(in_tb, out_tb);
            packet.set_position(-1);
            packet.set_stream(out_index);
            packet
                .write_interleaved(&mut out)
                .map_err(|e| MediaError::new(MediaErrorKind::Mux, e))?;
        }
    }
    out.write_trailer()
        .map_err(|e| MediaError::new(MediaErrorKind::Mux, e))?;
    drop(out);
    Ok(out_file.take())
}
