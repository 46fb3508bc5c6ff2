//! UI Automation backend: registers a focus-changed event handler with UI Automation and
//! describes each newly focused element.
//!
//! The watcher thread joins the multithreaded COM apartment, creates the UI Automation client
//! and registers the handler, then only waits for the stop signal. UI Automation calls the
//! handler on its own worker threads (never a UI thread, so the handler may query the
//! application); the handler stamps the event first, before any query, so a slow application
//! delays the description of a field but never its timestamp. The properties that identify the
//! element come cached with the event (one cross-process round trip); the text of a field is
//! never read: `has_value` comes from its length.
#![allow(unsafe_code)] // COM and Win32: every UI Automation call is `unsafe` in the `windows` crate

mod describe;

use super::watcher::health;
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::Sender;
use vigil_capture::Clock;
use windows::Win32::System::Com::{
    CoCreateInstance, CoInitializeEx, CoUninitialize, CLSCTX_INPROC_SERVER, COINIT_MULTITHREADED,
};
use windows::Win32::UI::Accessibility::{
    CUIAutomation, CUIAutomation8, IUIAutomation, IUIAutomation2, IUIAutomationCacheRequest,
    IUIAutomationElement, IUIAutomationFocusChangedEventHandler,
    IUIAutomationFocusChangedEventHandler_Impl, IUIAutomationTreeWalker,
    UIA_AutomationIdPropertyId, UIA_ControlTypePropertyId, UIA_IsPasswordPropertyId,
    UIA_NamePropertyId, UIA_NativeWindowHandlePropertyId, UIA_ProcessIdPropertyId, UIA_PROPERTY_ID,
};
use windows_core::{implement, Interface, Ref};

use super::tracker::{Change, FocusTracker};
use super::watcher::{FocusWatcher, FocusWatcherError};
use crate::{TriggerEvent, TriggerSource};

/// Start-up is a handful of in-process COM calls.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// A hung application must not stall the description of the next field for long (the default
/// UI Automation transaction timeout is 20 s).
const APP_REPLY_TIMEOUT_MS: u32 = 1_000;

type StartResult = Result<(), FocusWatcherError>;

pub(super) fn start(
    clock: Clock,
    tx: Sender<TriggerEvent>,
) -> Result<FocusWatcher, FocusWatcherError> {
    let (stop_tx, stop_rx) = async_channel::bounded::<()>(1);
    // The handler ends the thread through a weak sender (when nobody listens any more): it
    // must not keep the channel open once the FocusWatcher dropped its sender.
    let end = stop_tx.downgrade();
    let (ready_tx, ready_rx) = mpsc::sync_channel::<StartResult>(1);
    let thread = std::thread::Builder::new()
        .name("vigil-focus-uia".into())
        .spawn(move || watch(clock, tx, stop_rx, end, ready_tx))
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

/// The whole life of the watcher thread: start-up (reported on `ready`), then waiting until the
/// FocusWatcher stops it or the handler finds the receiver gone.
fn watch(
    clock: Clock,
    tx: Sender<TriggerEvent>,
    stop: async_channel::Receiver<()>,
    end: async_channel::WeakSender<()>,
    ready: mpsc::SyncSender<StartResult>,
) {
    let failed = |e: windows_core::Error| FocusWatcherError::SubscribeFailed(e.into());
    // Declared first, dropped last: COM stays initialised until the handler is removed.
    let _apartment = match Apartment::enter() {
        Ok(apartment) => apartment,
        Err(e) => {
            let _ = ready.send(Err(failed(e)));
            return;
        }
    };
    let subscription = match Subscription::new(clock, tx.clone(), end) {
        Ok(subscription) => subscription,
        Err(e) => {
            let _ = ready.send(Err(failed(e)));
            return;
        }
    };
    let _ = tx.send(health(
        &clock,
        true,
        "subscribed to UI Automation focus events".into(),
    ));
    let _ = ready.send(Ok(()));
    tracing::debug!("UI Automation focus watcher subscribed");
    // Err: the FocusWatcher dropped its sender (a stop, nothing to report). Ok: the handler
    // could not deliver an event.
    let receiver_gone = stop.recv_blocking().is_ok();
    drop(subscription);
    if receiver_gone {
        let detail = "the trigger event receiver is gone".to_string();
        tracing::warn!(%detail, "UI Automation focus watcher stopped");
        let _ = tx.send(health(&clock, false, detail));
    }
}

/// This thread's membership of the multithreaded apartment, where UI Automation clients that
/// handle events belong (their handlers are then called on UI Automation's threads).
struct Apartment;

impl Apartment {
    fn enter() -> windows_core::Result<Self> {
        // SAFETY: called once on this new thread, before any other COM call on it; balanced by
        // CoUninitialize in Drop, on the same thread (the guard never leaves `watch`).
        unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) }.ok()?;
        Ok(Self)
    }
}

impl Drop for Apartment {
    fn drop(&mut self) {
        // SAFETY: balances the successful CoInitializeEx of `enter` on this thread; every COM
        // object of the watcher was released before (the subscription is dropped first).
        unsafe { CoUninitialize() };
    }
}

/// The registered handler; dropping it unregisters it.
struct Subscription {
    automation: IUIAutomation,
    handler: IUIAutomationFocusChangedEventHandler,
}

impl Subscription {
    fn new(
        clock: Clock,
        tx: Sender<TriggerEvent>,
        end: async_channel::WeakSender<()>,
    ) -> windows_core::Result<Self> {
        let automation = create_automation()?;
        let fields = cache_request(
            &automation,
            &[
                UIA_NamePropertyId,
                UIA_ControlTypePropertyId,
                UIA_AutomationIdPropertyId,
                UIA_IsPasswordPropertyId,
                UIA_ProcessIdPropertyId,
                UIA_NativeWindowHandlePropertyId,
            ],
        )?;
        let documents = cache_request(&automation, &[UIA_ControlTypePropertyId])?;
        // SAFETY: a plain getter on a valid UI Automation client.
        let walker = unsafe { automation.ControlViewWalker() }?;
        let handler: IUIAutomationFocusChangedEventHandler = FocusHandler {
            clock,
            tx,
            end,
            walker,
            documents,
            tracker: Mutex::new(FocusTracker::default()),
        }
        .into();
        // SAFETY: both interfaces are valid; UI Automation keeps its own references to the
        // handler and the cache request until the handler is removed.
        unsafe { automation.AddFocusChangedEventHandler(&fields, &handler) }?;
        Ok(Self {
            automation,
            handler,
        })
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        // SAFETY: removes the handler registered in `new`, from the thread that registered it
        // (never from within the handler, which UI Automation forbids); it returns once no
        // call of the handler is running.
        if let Err(e) = unsafe {
            self.automation
                .RemoveFocusChangedEventHandler(&self.handler)
        } {
            tracing::debug!(error = %e, "removing the UI Automation focus handler failed");
        }
    }
}

/// The UI Automation client: the Windows 8+ one (whose timeouts can be set) when available.
fn create_automation() -> windows_core::Result<IUIAutomation> {
    // SAFETY: COM is initialised on this thread; the class ids are UI Automation's and the
    // returned interface is checked by `CoCreateInstance` (QueryInterface).
    let automation = unsafe { CoCreateInstance(&CUIAutomation8, None, CLSCTX_INPROC_SERVER) }
        .or_else(|_| {
            // SAFETY: as above, the pre-Windows 8 class.
            unsafe {
                CoCreateInstance::<_, IUIAutomation>(&CUIAutomation, None, CLSCTX_INPROC_SERVER)
            }
        })?;
    if let Ok(automation2) = automation.cast::<IUIAutomation2>() {
        // SAFETY: a plain setter on a valid client; a failure keeps the default timeout.
        if let Err(e) = unsafe { automation2.SetTransactionTimeout(APP_REPLY_TIMEOUT_MS) } {
            tracing::debug!(error = %e, "setting the UI Automation transaction timeout failed");
        }
    }
    Ok(automation)
}

/// A cache request for `properties` of the element itself.
fn cache_request(
    automation: &IUIAutomation,
    properties: &[UIA_PROPERTY_ID],
) -> windows_core::Result<IUIAutomationCacheRequest> {
    // SAFETY: a plain factory call on a valid client.
    let request = unsafe { automation.CreateCacheRequest() }?;
    for &property in properties {
        // SAFETY: a valid request and a property id from the UI Automation headers.
        unsafe { request.AddProperty(property) }?;
    }
    Ok(request)
}

/// The COM object UI Automation calls on each focus change.
#[implement(IUIAutomationFocusChangedEventHandler)]
struct FocusHandler {
    clock: Clock,
    tx: Sender<TriggerEvent>,
    end: async_channel::WeakSender<()>,
    /// Walks up to the web document of a browser field (for its URL).
    walker: IUIAutomationTreeWalker,
    /// Caches the control type of each ancestor fetched on that walk.
    documents: IUIAutomationCacheRequest,
    /// Also serialises the handler: events are described and sent in the order they came.
    tracker: Mutex<FocusTracker<Vec<i32>>>,
}

impl IUIAutomationFocusChangedEventHandler_Impl for FocusHandler_Impl {
    fn HandleFocusChangedEvent(
        &self,
        sender: Ref<IUIAutomationElement>,
    ) -> windows_core::Result<()> {
        // The stamp: before any query to the application.
        let at_ns = self.clock.now_ns();
        if let Some(element) = sender.as_ref() {
            self.on_focus(element, at_ns);
        }
        Ok(())
    }
}

impl FocusHandler {
    fn on_focus(&self, element: &IUIAutomationElement, at_ns: u64) {
        let mut tracker = self.tracker.lock().unwrap_or_else(PoisonError::into_inner);
        // UI Automation repeats focus events (an element's own provider and the MSAA proxy);
        // an element without runtime id is never taken for a repeat.
        if let Some(id) = describe::runtime_id(element) {
            if tracker.on_signal(&id, true, at_ns) == Change::Ignore {
                return;
            }
        }
        let field = describe::describe(element, &self.walker, &self.documents);
        let event = TriggerEvent::FocusGained {
            at_ns,
            source: TriggerSource::Accessibility,
            field,
        };
        if self.tx.send(event).is_err() {
            // Nobody listens any more: end the watcher thread (if it still runs).
            if let Some(end) = self.end.upgrade() {
                let _ = end.try_send(());
            }
        }
    }
}
