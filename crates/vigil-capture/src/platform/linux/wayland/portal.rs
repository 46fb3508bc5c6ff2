//! The xdg-desktop-portal ScreenCast portal: one session over every monitor, granted once by the
//! user and then restored from a token kept on disk, so agents are not asked at every start.

use std::future::Future;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use ashpd::desktop::screencast::{CursorMode, Screencast, SelectSourcesOptions, SourceType};
use ashpd::desktop::{PersistMode, ResponseError, Session};
use ashpd::enumflags2::BitFlags;
use ashpd::PortalError;

use crate::{CaptureError, CaptureErrorKind, MonitorInfo};

/// How often a pending portal call (the user may leave the dialog open) checks `stop`.
const STOP_POLL: Duration = Duration::from_millis(100);
const TOKEN_FILE: &str = "screencast-restore-token";

/// One monitor stream the compositor shares.
#[derive(Debug, Clone)]
pub(super) struct PortalStream {
    /// PipeWire node to connect to.
    pub node_id: u32,
    /// Position in the compositor's (logical) layout, when the portal gives it.
    pub position: Option<(i32, i32)>,
    /// Logical size, when the portal gives it; the negotiated pixel size may differ (scaling).
    pub size: Option<(u32, u32)>,
}

impl PortalStream {
    pub(super) fn monitor_info(&self, primary: bool) -> MonitorInfo {
        let (x, y) = self.position.unwrap_or((0, 0));
        let (width, height) = self.size.unwrap_or((0, 0));
        MonitorInfo {
            name: format!("portal-stream-{}", self.node_id),
            x,
            y,
            width,
            height,
            primary,
        }
    }
}

/// The zbus objects of a running session; they must be dropped inside the runtime.
struct Handles {
    screencast: Screencast,
    session: Session<Screencast>,
}

/// A started screen-cast session. Dropping it closes the session (ends the compositor's cast).
pub(super) struct Cast {
    handles: Option<Handles>,
    /// The shared monitors, in the portal's order.
    pub streams: Vec<PortalStream>,
    /// The PipeWire remote the streams live on (taken by the capture).
    pub remote: Option<OwnedFd>,
}

impl Drop for Cast {
    fn drop(&mut self) {
        let (Some(handles), Ok(rt)) = (self.handles.take(), runtime()) else {
            return;
        };
        // Fire and forget: closing is best effort (the portal also closes the session when our
        // D-Bus connection goes), and zbus may spawn cleanup tasks, which needs the runtime.
        rt.spawn(async move {
            let _ = handles.session.close().await;
            drop(handles.screencast);
        });
    }
}

/// zbus (tokio flavour) runs each connection's reader task on the runtime that opened it, so the
/// runtime must outlive every connection: one small process-wide runtime, never dropped.
fn runtime() -> Result<&'static tokio::runtime::Runtime, CaptureError> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("vigil-portal")
        .enable_all()
        .build()
        .map_err(|e| {
            CaptureError::new(CaptureErrorKind::Backend, format!("portal runtime: {e}"))
        })?;
    Ok(RUNTIME.get_or_init(|| rt))
}

/// Runs a portal exchange on the runtime and waits for it from this (non-async) thread; gives up
/// when `stop` is set, since the permission dialog can stay open indefinitely.
fn run_portal<T, F>(exchange: F, stop: &AtomicBool) -> Result<T, CaptureError>
where
    T: Send + 'static,
    F: Future<Output = Result<T, CaptureError>> + Send + 'static,
{
    let rt = runtime()?;
    let task = rt.spawn(exchange);
    while !task.is_finished() {
        if stop.load(Ordering::SeqCst) {
            // Aborting drops the session objects on the runtime; the portal then closes it.
            task.abort();
            return Err(CaptureError::new(
                CaptureErrorKind::Backend,
                "stopped while waiting for the screen-cast portal",
            ));
        }
        std::thread::sleep(STOP_POLL);
    }
    rt.block_on(task).map_err(|e| {
        CaptureError::new(
            CaptureErrorKind::Backend,
            format!("screen-cast portal task: {e}"),
        )
    })?
}

/// Maps portal failures to kinds callers act on: a refused dialog is a denied permission; no
/// session bus or no ScreenCast portal means the backend is unavailable.
fn portal_error(e: ashpd::Error) -> CaptureError {
    let kind = match &e {
        ashpd::Error::Response(ResponseError::Cancelled)
        | ashpd::Error::Portal(PortalError::Cancelled(_) | PortalError::NotAllowed(_)) => {
            CaptureErrorKind::PermissionDenied
        }
        ashpd::Error::PortalNotFound(_)
        | ashpd::Error::RequiresVersion(..)
        | ashpd::Error::Zbus(_)
        | ashpd::Error::IO(_) => CaptureErrorKind::BackendUnavailable,
        _ => CaptureErrorKind::Backend,
    };
    CaptureError::new(kind, format!("screen-cast portal: {e}"))
}

/// A fresh D-Bus connection per session, so a restarted session bus is picked up on retry
/// (ashpd's shared connection would stay dead).
async fn connect() -> Result<Screencast, CaptureError> {
    let connection = ashpd::zbus::Connection::session().await.map_err(|e| {
        CaptureError::new(
            CaptureErrorKind::BackendUnavailable,
            format!("D-Bus session bus: {e}"),
        )
    })?;
    let screencast = Screencast::with_connection(connection)
        .await
        .map_err(portal_error)?;
    let sources = screencast
        .available_source_types()
        .await
        .map_err(portal_error)?;
    if !sources.contains(SourceType::Monitor) {
        return Err(CaptureError::new(
            CaptureErrorKind::Unsupported,
            "the screen-cast portal cannot share monitors",
        ));
    }
    Ok(screencast)
}

/// Checks that the ScreenCast portal answers and can share monitors, without asking the user.
pub(super) fn probe() -> Result<(), CaptureError> {
    run_portal(async { connect().await.map(drop) }, &AtomicBool::new(false))
}

/// Starts a session over every monitor; asks the user unless the stored grant still holds.
/// `open_remote` also opens the PipeWire remote the frames come through.
pub(super) fn start(
    draw_pointer: bool,
    open_remote: bool,
    stop: &AtomicBool,
) -> Result<Cast, CaptureError> {
    let (handles, streams, remote) = run_portal(start_async(draw_pointer, open_remote), stop)?;
    Ok(Cast {
        handles: Some(handles),
        streams,
        remote,
    })
}

type Started = (Handles, Vec<PortalStream>, Option<OwnedFd>);

async fn start_async(draw_pointer: bool, open_remote: bool) -> Result<Started, CaptureError> {
    let screencast = connect().await?;
    let wanted = if draw_pointer {
        CursorMode::Embedded
    } else {
        CursorMode::Hidden
    };
    // Older portals lack the property; then the wanted mode is tried as is.
    let cursor = match screencast.available_cursor_modes().await {
        Ok(modes) if !modes.contains(wanted) && modes.contains(CursorMode::Hidden) => {
            tracing::warn!(
                ?wanted,
                "portal cannot draw the pointer that way; hiding it"
            );
            CursorMode::Hidden
        }
        _ => wanted,
    };
    let session = screencast
        .create_session(Default::default())
        .await
        .map_err(portal_error)?;
    let token = load_token();
    let options = SelectSourcesOptions::default()
        .set_cursor_mode(cursor)
        .set_sources(BitFlags::from(SourceType::Monitor))
        .set_multiple(true)
        .set_persist_mode(PersistMode::ExplicitlyRevoked)
        .set_restore_token(token.as_deref());
    screencast
        .select_sources(&session, options)
        .await
        .map_err(portal_error)?
        .response()
        .map_err(portal_error)?;
    let started = screencast
        .start(&session, None, Default::default())
        .await
        .map_err(portal_error)?
        .response()
        .map_err(portal_error)?;
    // Tokens are single-use: each start hands out the one for the next start.
    if let Some(new_token) = started.restore_token() {
        if let Err(e) = save_token(new_token) {
            tracing::warn!(error = %e, "cannot store the screen-cast grant; the user will be asked again");
        }
    }
    let streams: Vec<PortalStream> = started
        .streams()
        .iter()
        .map(|s| PortalStream {
            node_id: s.pipe_wire_node_id(),
            position: s.position(),
            size: s.size().map(|(w, h)| (w.max(0) as u32, h.max(0) as u32)),
        })
        .collect();
    if streams.is_empty() {
        return Err(CaptureError::new(
            CaptureErrorKind::DeviceNotFound,
            "the screen-cast portal shared no monitor",
        ));
    }
    let remote = if open_remote {
        let fd = screencast
            .open_pipe_wire_remote(&session, Default::default())
            .await
            .map_err(portal_error)?;
        Some(fd)
    } else {
        None
    };
    Ok((
        Handles {
            screencast,
            session,
        },
        streams,
        remote,
    ))
}

/// `$XDG_STATE_HOME/vigil/` or `~/.local/state/vigil/`: the grant is per user, like the dialog.
fn token_path() -> Option<PathBuf> {
    let non_empty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
    let state = std::env::var_os("XDG_STATE_HOME")
        .and_then(non_empty)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(non_empty)
                .map(|h| h.join(".local/state"))
        })?;
    Some(state.join("vigil").join(TOKEN_FILE))
}

fn load_token() -> Option<String> {
    let token = std::fs::read_to_string(token_path()?).ok()?;
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Writes the token readable by the user only (it lets anyone running as the user skip the
/// dialog), through a temporary file so a crash never leaves half a token.
fn save_token(token: &str) -> std::io::Result<()> {
    let path = token_path().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "neither XDG_STATE_HOME nor HOME is set",
        )
    })?;
    vigil_files::write_private(&path, token.as_bytes())
}
