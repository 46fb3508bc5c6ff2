//! AT-SPI backend: turns on session accessibility, subscribes to `object:state-changed:focused`
//! on the accessibility bus and describes each newly focused object from its accessible.
//!
//! One thread runs one small async loop (`futures-lite` `block_on`; zbus does its socket I/O on
//! its own executor thread). Signals are stamped as soon as they come off the bus, in a future
//! that runs next to the one that queries the application, so a slow application delays the
//! description of a field but never its timestamp.

mod bus;
mod fields;

use super::watcher::health;
use std::sync::mpsc;
use std::time::Duration;

use atspi::events::object::StateChangedEvent;
use atspi::proxy::accessible::AccessibleProxy;
use atspi::proxy::bus::{BusProxy, StatusProxy};

use atspi::proxy::document::DocumentProxy;
use atspi::proxy::registry::RegistryProxy;
use atspi::zbus::{self, proxy::CacheProperties, MessageStream};
use atspi::{ObjectRefOwned, RelationType, Role, State};
use crossbeam_channel::Sender;
use futures_lite::{future, StreamExt};
use vigil_capture::Clock;

use super::tracker::{Change, FocusTracker};
use super::watcher::{FocusWatcher, FocusWatcherError, WatchedFields};
use crate::{FieldInfo, TriggerEvent, TriggerSource};
use bus::{proxy, screen_rect, MAX_ANCESTORS};
use fields::FieldPoller;

/// The registry event that makes toolkits send focus changes (and only those).
const FOCUS_EVENT: &str = "object:state-changed:focused";
/// The matching bus rule: the bus forwards focus changes, not every state change.
const FOCUS_RULE: &str = "type='signal',interface='org.a11y.atspi.Event.Object',\
                          member='StateChanged',arg0='focused'";
/// A hung application must not stall the description of the next field for long.
const APP_REPLY_TIMEOUT: Duration = Duration::from_secs(1);
/// Start-up is a handful of calls to local buses.
const START_TIMEOUT: Duration = Duration::from_secs(10);
type StartResult = Result<(), FocusWatcherError>;

pub(super) fn start(
    clock: Clock,
    tx: Sender<TriggerEvent>,
    watched: WatchedFields,
) -> Result<FocusWatcher, FocusWatcherError> {
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    let (ready_tx, ready_rx) = mpsc::sync_channel::<StartResult>(1);
    let thread = std::thread::Builder::new()
        .name("vigil-focus-atspi".into())
        .spawn(move || {
            let stopped = async {
                // Ends when the FocusWatcher drops its sender.
                let _ = stop_rx.recv().await;
            };
            future::block_on(future::or(watch(clock, tx, watched, ready_tx), stopped));
        })
        .map_err(FocusWatcherError::Thread)?;
    let watcher = FocusWatcher::new(stop_tx, thread);
    match ready_rx.recv_timeout(START_TIMEOUT) {
        Ok(Ok(())) => Ok(watcher),
        Ok(Err(e)) => Err(e),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(FocusWatcherError::StartTimedOut(START_TIMEOUT))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(FocusWatcherError::Thread(
            std::io::Error::other("the focus watcher thread ended during start-up"),
        )),
    }
}

/// The whole life of the watcher thread: start-up (reported on `ready`), then events until the
/// bus connection ends.
async fn watch(
    clock: Clock,
    tx: Sender<TriggerEvent>,
    watched: WatchedFields,
    ready: mpsc::SyncSender<StartResult>,
) {
    let subscribed = async {
        let conn = connect().await?;
        let stream = subscribe(&conn).await?;
        Ok::<_, FocusWatcherError>((conn, stream))
    };
    let (conn, stream) = match subscribed.await {
        Ok(ok) => ok,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = tx.send(health(
        &clock,
        true,
        "subscribed to AT-SPI focus events".into(),
    ));
    let _ = ready.send(Ok(()));
    tracing::debug!("AT-SPI focus watcher subscribed");
    let _poller = FieldPoller::start(conn.clone(), clock, tx.clone(), watched);
    let detail = pump(&conn, stream, clock, &tx).await;
    tracing::warn!(%detail, "AT-SPI focus watcher stopped");
    let _ = tx.send(health(&clock, false, detail));
}

/// Turns session accessibility on (toolkits such as Chromium only export their tree then) and
/// connects to the accessibility bus.
async fn connect() -> Result<zbus::Connection, FocusWatcherError> {
    let session = zbus::Connection::session()
        .await
        .map_err(|e| FocusWatcherError::SessionBusUnreachable(e.into()))?;
    let no_bus = |e: zbus::Error| FocusWatcherError::NoAccessibilityBus(e.into());
    let status = StatusProxy::builder(&session)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(no_bus)?;
    status.set_is_enabled(true).await.map_err(no_bus)?;
    let address = BusProxy::new(&session)
        .await
        .map_err(no_bus)?
        .get_address()
        .await
        .map_err(no_bus)?;
    let unreachable = |e: zbus::Error| FocusWatcherError::AccessibilityBusUnreachable(e.into());
    let address: zbus::Address = address.parse().map_err(unreachable)?;
    zbus::connection::Builder::address(address)
        .map_err(unreachable)?
        .method_timeout(APP_REPLY_TIMEOUT)
        .build()
        .await
        .map_err(unreachable)
}

/// Asks the registry to have applications send focus changes, and listens for them.
async fn subscribe(conn: &zbus::Connection) -> Result<MessageStream, FocusWatcherError> {
    let failed = |e: zbus::Error| FocusWatcherError::SubscribeFailed(e.into());
    // Match first, so that no signal sent right after registering is missed.
    let stream = MessageStream::for_match_rule(FOCUS_RULE, conn, None)
        .await
        .map_err(failed)?;
    RegistryProxy::builder(conn)
        .cache_properties(CacheProperties::No)
        .build()
        .await
        .map_err(failed)?
        .register_event(FOCUS_EVENT)
        .await
        .map_err(failed)?;
    Ok(stream)
}

/// Runs until the stream ends or fails, or the receiver of `tx` is gone; returns why.
async fn pump(
    conn: &zbus::Connection,
    mut stream: MessageStream,
    clock: Clock,
    tx: &Sender<TriggerEvent>,
) -> String {
    let (queue_tx, queue_rx) = async_channel::unbounded();
    let receive = async move {
        while let Some(message) = stream.next().await {
            // The stamp: before any query to the application.
            let at_ns = clock.now_ns();
            if queue_tx.send((at_ns, message)).await.is_err() {
                break;
            }
        }
        // Closing the queue lets `process` drain it and report the end; until then, wait.
        drop(queue_tx);
        future::pending::<String>().await
    };
    let process = async move {
        let mut tracker = FocusTracker::default();
        while let Ok((at_ns, message)) = queue_rx.recv().await {
            let message: zbus::Message = match message {
                Ok(m) => m,
                Err(e) => return format!("accessibility bus failed: {e}"),
            };
            let Ok(signal) = StateChangedEvent::try_from(&message) else {
                continue;
            };
            if signal.state != State::Focused || signal.item.is_null() {
                continue;
            }
            let event = match tracker.on_signal(&signal.item, signal.enabled, at_ns) {
                Change::Ignore => continue,
                Change::Lost => TriggerEvent::FocusLost {
                    at_ns,
                    source: TriggerSource::Accessibility,
                    has_value: None,
                },
                Change::Gained => TriggerEvent::FocusGained {
                    at_ns,
                    source: TriggerSource::Accessibility,
                    field: describe(conn, &signal.item).await,
                },
            };
            if tx.send(event).is_err() {
                return "the trigger event receiver is gone".to_string();
            }
        }
        "the accessibility bus connection closed".to_string()
    };
    future::or(process, receive).await
}

/// Everything that identifies the focused object. Each query may fail (the object may already
/// be gone); what was learned is kept. Its text is never read.
async fn describe(conn: &zbus::Connection, item: &ObjectRefOwned) -> FieldInfo {
    let mut field = FieldInfo {
        key: object_key(item),
        ..FieldInfo::default()
    };
    let Ok(accessible) = proxy::<AccessibleProxy>(conn, item).await else {
        return field;
    };
    // Independent queries travel together: one round trip instead of five.
    let ((name, role), (attributes, (accessible_id, rect))) = future::zip(
        future::zip(accessible.name(), role_of(&accessible)),
        future::zip(
            accessible.get_attributes(),
            future::zip(accessible.accessible_id(), screen_rect(conn, item)),
        ),
    )
    .await;
    field.name = non_empty(name.ok());
    if field.name.is_none() {
        field.name = label_name(conn, &accessible).await;
    }
    field.password = role == Some(Role::PasswordText);
    field.role = match role {
        Some(role) => Some(role.name().to_string()),
        None => non_empty(accessible.get_role_name().await.ok()).map(|r| r.to_lowercase()),
    };
    let mut attributes = attributes.unwrap_or_default();
    field.id = non_empty(attributes.remove("id")).or_else(|| non_empty(accessible_id.ok()));
    field.html_name = non_empty(attributes.remove("html-input-name"));
    field.input_type = non_empty(attributes.remove("text-input-type"));
    field.rect = rect;
    describe_context(conn, &accessible, &mut field).await;
    field
}

async fn role_of(accessible: &AccessibleProxy<'_>) -> Option<Role> {
    accessible.get_role().await.ok()
}

/// The name of the label that labels the object, for toolkits that leave the name empty.
async fn label_name(conn: &zbus::Connection, accessible: &AccessibleProxy<'_>) -> Option<String> {
    let relations = accessible.get_relation_set().await.ok()?;
    let (_, targets) = relations
        .into_iter()
        .find(|(kind, _)| *kind == RelationType::LabelledBy)?;
    let label = targets.first()?;
    let label = proxy::<AccessibleProxy>(conn, label).await.ok()?;
    non_empty(label.name().await.ok())
}

/// Walks up from the object: the first web document gives the URL, the application its name,
/// and the ancestor right below the application (the top-level window) the title.
async fn describe_context(
    conn: &zbus::Connection,
    accessible: &AccessibleProxy<'_>,
    field: &mut FieldInfo,
) {
    let Ok(mut parent) = accessible.parent().await else {
        return;
    };
    let mut window: Option<AccessibleProxy<'_>> = None;
    for _ in 0..MAX_ANCESTORS {
        if parent.is_null() {
            break;
        }
        let Ok(ancestor) = proxy::<AccessibleProxy>(conn, &parent).await else {
            break;
        };
        let (role, next) = future::zip(ancestor.get_role(), ancestor.parent()).await;
        match role {
            Ok(Role::Application) => {
                field.app = non_empty(ancestor.name().await.ok());
                break;
            }
            Ok(Role::DocumentWeb | Role::DocumentFrame) if field.url.is_none() => {
                field.url = document_url(conn, &parent).await;
            }
            _ => {}
        }
        window = Some(ancestor);
        let Ok(next) = next else {
            break;
        };
        parent = next;
    }
    if let Some(window) = window {
        field.window_title = non_empty(window.name().await.ok());
    }
}

/// The page URL: Firefox names the document attribute `DocURL`, Chromium `URI`.
async fn document_url(conn: &zbus::Connection, document: &ObjectRefOwned) -> Option<String> {
    let document = proxy::<DocumentProxy>(conn, document).await.ok()?;
    let mut attributes = document.get_attributes().await.unwrap_or_default();
    non_empty(attributes.remove("DocURL"))
        .or_else(|| non_empty(attributes.remove("URI")))
        .or(non_empty(document.get_attribute_value("DocURL").await.ok()))
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

/// A field's key: its application's bus name and its object path (`:1.42/org/a11y/…`).
fn object_key(item: &ObjectRefOwned) -> Option<String> {
    let name = item.name()?;
    Some(format!("{}{}", name.as_str(), item.path().as_str()))
}
