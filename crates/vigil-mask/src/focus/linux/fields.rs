//! Watched fields: where each field that holds card data is now, sampled every [`FIELD_POLL`].
//!
//! A field's own answers are not enough in Chromium: a page left for another keeps its
//! accessible objects in the back/forward cache, and they go on answering "showing, visible"
//! at their old place, with their value. What gives such a page away is its document: Chromium
//! detaches it from the tree (its index in its parent becomes -1) until the page comes back.
//! So each field's enclosing documents (the page's, and each frame's between it and the
//! field) are looked up once and asked at every sample whether they are still attached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use atspi::proxy::accessible::AccessibleProxy;
use atspi::proxy::text::TextProxy;
use atspi::zbus;
use atspi::{Role, State};
use crossbeam_channel::Sender;
use futures_lite::future;
use vigil_capture::Clock;

use super::bus::{proxy, proxy_at, screen_rect_at, FIELD_POLL, GONE_ERRORS, MAX_ANCESTORS};
use crate::focus::WatchedFields;
use crate::{FieldPresence, TriggerEvent, TriggerSource};

/// An accessible named by its bus name and object path.
type ObjectAddress = (String, String);

/// Samples the watched fields every [`FIELD_POLL`] on a thread of its own (zbus runs the
/// connection's I/O on its own executor, so blocking calls here do not stall the focus pump).
pub(super) struct FieldPoller {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FieldPoller {
    pub(super) fn start(
        conn: zbus::Connection,
        clock: Clock,
        tx: Sender<TriggerEvent>,
        watched: WatchedFields,
    ) -> Option<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("vigil-field-poll".into())
            .spawn(move || poll(&conn, clock, &tx, &watched, &flag))
            .map_err(|e| tracing::warn!(error = %e, "cannot start the field poller"))
            .ok()?;
        Some(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for FieldPoller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the poller remembers of a watched field between samples.
#[derive(Default)]
struct Memo {
    /// Its enclosing documents, innermost first, once found (a failed walk is tried again).
    documents: Option<Vec<ObjectAddress>>,
    /// Its last presence (changes are logged).
    last: Option<FieldPresence>,
}

/// The poller's loop: every watched field sampled, then a pause, until `stop` is set or the
/// engine hangs up.
fn poll(
    conn: &zbus::Connection,
    clock: Clock,
    tx: &Sender<TriggerEvent>,
    watched: &WatchedFields,
    stop: &AtomicBool,
) {
    let mut memos: HashMap<String, Memo> = HashMap::new();
    while !stop.load(Ordering::SeqCst) {
        let keys = watched.keys();
        memos.retain(|key, _| keys.contains(key));
        for key in keys {
            let at_ns = clock.now_ns();
            let memo = memos.entry(key.clone()).or_default();
            let presence = future::block_on(sample(conn, &key, &mut memo.documents));
            if memo.last.replace(presence) != Some(presence) {
                tracing::debug!(%key, ?presence, "watched field changed");
            }
            let event = TriggerEvent::FieldState {
                at_ns,
                source: TriggerSource::Accessibility,
                key,
                presence,
                field: None,
            };
            if tx.send(event).is_err() {
                return;
            }
        }
        std::thread::sleep(FIELD_POLL);
    }
}

/// Where a watched field is now. Only a definite answer releases it: an object the
/// application says is gone or defunct, or a text field with no characters. A slow or failing
/// application gives "shown, position unknown" (the whole screen stays masked). A field whose
/// page was left for another (a detached document) is hidden: it still holds its value and
/// comes back with the page.
async fn sample(
    conn: &zbus::Connection,
    key: &str,
    documents: &mut Option<Vec<ObjectAddress>>,
) -> FieldPresence {
    let unknown = FieldPresence::Shown { rect: None };
    let Some((name, path)) = key.find('/').map(|at| key.split_at(at)) else {
        return FieldPresence::Gone;
    };
    let Ok(accessible) = proxy_at::<AccessibleProxy>(conn, name, path).await else {
        return unknown;
    };
    let states = match accessible.get_state().await {
        Ok(states) => states,
        Err(zbus::Error::MethodError(error, _, _)) if GONE_ERRORS.contains(&error.as_str()) => {
            return FieldPresence::Gone
        }
        Err(_) => return unknown,
    };
    if states.contains(State::Defunct) {
        return FieldPresence::Gone;
    }
    if documents.is_none() {
        *documents = enclosing_documents(conn, name, path).await;
    }
    let documents = documents.as_deref().unwrap_or_default();
    let count = async {
        let text = proxy_at::<TextProxy>(conn, name, path).await.ok()?;
        text.character_count().await.ok()
    };
    let ((count, rect), attached) = future::zip(
        future::zip(count, screen_rect_at(conn, name, path)),
        all_attached(conn, documents),
    )
    .await;
    if count == Some(0) {
        return FieldPresence::Gone;
    }
    if !attached || !states.contains(State::Showing) || !states.contains(State::Visible) {
        return FieldPresence::Hidden;
    }
    FieldPresence::Shown { rect }
}

/// False only when a document says it is detached from the tree; a failed query counts as
/// attached (when Vigil cannot tell, it masks).
async fn all_attached(conn: &zbus::Connection, documents: &[ObjectAddress]) -> bool {
    for (name, path) in documents {
        let Ok(document) = proxy_at::<AccessibleProxy>(conn, name, path).await else {
            continue;
        };
        if document.get_index_in_parent().await == Ok(-1) {
            return false;
        }
    }
    true
}

/// The web documents between the object and its application, innermost first. `None` when
/// the walk failed before reaching the application.
async fn enclosing_documents(
    conn: &zbus::Connection,
    name: &str,
    path: &str,
) -> Option<Vec<ObjectAddress>> {
    let accessible = proxy_at::<AccessibleProxy>(conn, name, path).await.ok()?;
    let mut parent = accessible.parent().await.ok()?;
    let mut documents = Vec::new();
    for _ in 0..MAX_ANCESTORS {
        if parent.is_null() {
            return Some(documents);
        }
        let ancestor = proxy::<AccessibleProxy>(conn, &parent).await.ok()?;
        let (role, next) = future::zip(ancestor.get_role(), ancestor.parent()).await;
        match role.ok()? {
            Role::Application => return Some(documents),
            Role::DocumentWeb | Role::DocumentFrame => {
                let name = parent.name()?.to_string();
                documents.push((name, parent.path().to_string()));
            }
            _ => {}
        }
        parent = next.ok()?;
    }
    Some(documents)
}
