//! What identifies a focused UI Automation element: its cached properties, its rectangle in
//! physical pixels, whether it holds text (from the length only), the process and top-level
//! window it belongs to, and for browsers the page URL.
#![allow(unsafe_code)] // UI Automation, SAFEARRAY and Win32 window and process calls

use windows::Win32::Foundation::{CloseHandle, HWND, LPARAM, WPARAM};
use windows::Win32::System::Com::SAFEARRAY;
use windows::Win32::System::Ole::{
    SafeArrayDestroy, SafeArrayGetElement, SafeArrayGetLBound, SafeArrayGetUBound,
};
use windows::Win32::System::Threading::{
    OpenProcess, QueryFullProcessImageNameW, PROCESS_NAME_WIN32, PROCESS_QUERY_LIMITED_INFORMATION,
};
use windows::Win32::UI::Accessibility::*;
use windows::Win32::UI::HiDpi::{
    SetThreadDpiAwarenessContext, DPI_AWARENESS_CONTEXT, DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2,
};
use windows::Win32::UI::WindowsAndMessaging::{
    GetAncestor, GetForegroundWindow, GetWindowTextW, GetWindowThreadProcessId,
    SendMessageTimeoutW, GA_ROOT, SMTO_ABORTIFHUNG, WM_GETTEXTLENGTH,
};
use windows_core::{BSTR, PWSTR};

use crate::{FieldInfo, Rect};

/// Bounds the walk up to the web document (cycles, huge trees).
const MAX_ANCESTORS: usize = 64;
/// Runtime ids are a handful of integers; anything longer is not one.
const MAX_RUNTIME_ID_LEN: i32 = 64;
/// How long a hung window may keep us waiting for its text length.
const TEXT_LENGTH_TIMEOUT_MS: u32 = 200;
/// Processes whose web documents carry the page URL as their value.
const BROWSERS: &[&str] = &[
    "chrome", "msedge", "firefox", "brave", "opera", "vivaldi", "iexplore",
];

/// Everything that identifies the focused element. Each query may fail (the element may
/// already be gone); what was learned is kept. Its text is never read.
pub(super) fn describe(
    element: &IUIAutomationElement,
    walker: &IUIAutomationTreeWalker,
    documents: &IUIAutomationCacheRequest,
) -> FieldInfo {
    // SAFETY: reads of the properties cached with the event (the handler's cache request
    // asked for each of them) on a valid element; none of them calls the application.
    let (name, control_type, automation_id, password, pid, hwnd) = unsafe {
        (
            element.CachedName(),
            element.CachedControlType(),
            element.CachedAutomationId(),
            element.CachedIsPassword(),
            element.CachedProcessId(),
            element.CachedNativeWindowHandle(),
        )
    };
    let control_type = control_type.ok();
    let password = password.is_ok_and(|p| p.as_bool());
    let pid = pid
        .ok()
        .and_then(|p| u32::try_from(p).ok())
        .filter(|&p| p != 0);
    let hwnd = hwnd.ok().filter(|h| !h.is_invalid());
    let app = pid.and_then(process_name);
    let url = match &app {
        Some(app) if BROWSERS.contains(&app.to_lowercase().as_str()) => {
            document_url(element, walker, documents)
        }
        _ => None,
    };
    FieldInfo {
        window_title: window_title(pid, hwnd),
        app,
        url,
        name: text(name),
        role: if password {
            Some("password text".into())
        } else {
            control_type.map(|t| role_name(t).into())
        },
        id: text(automation_id),
        rect: screen_rect(element),
        password,
        has_value: has_value(element, control_type, hwnd),
        ..FieldInfo::default()
    }
}

/// The element's runtime id: what tells two events of one element from events of two.
pub(super) fn runtime_id(element: &IUIAutomationElement) -> Option<Vec<i32>> {
    // SAFETY: a read on a valid element; the array it returns is ours to destroy.
    let array = unsafe { element.GetRuntimeId() }.ok()?;
    if array.is_null() {
        return None;
    }
    let ids = read_i32_array(array);
    // SAFETY: `array` came from GetRuntimeId, is destroyed once and not used afterwards.
    let _ = unsafe { SafeArrayDestroy(array) };
    ids
}

/// The elements of a one-dimensional SAFEARRAY of VT_I4 (a runtime id).
fn read_i32_array(array: *const SAFEARRAY) -> Option<Vec<i32>> {
    // SAFETY: `array` is a valid SAFEARRAY (from GetRuntimeId), of one dimension.
    let (lower, upper) = unsafe { (SafeArrayGetLBound(array, 1), SafeArrayGetUBound(array, 1)) };
    let (lower, upper) = (lower.ok()?, upper.ok()?);
    if upper.saturating_sub(lower) >= MAX_RUNTIME_ID_LEN {
        return None;
    }
    let mut ids = Vec::new();
    for index in lower..=upper {
        let mut id = 0i32;
        // SAFETY: `index` lies within the bounds the array reported; the element type of a
        // runtime id is VT_I4, exactly the size of the `i32` it is copied into.
        unsafe { SafeArrayGetElement(array, &index, (&raw mut id).cast()) }.ok()?;
        ids.push(id);
    }
    Some(ids)
}

/// Roles in the words of the UI Automation control types (lower case); password fields are
/// `password text`, as on Linux, and unlisted types `other`.
const ROLES: &[(UIA_CONTROLTYPE_ID, &str)] = &[
    (UIA_EditControlTypeId, "edit"),
    (UIA_ComboBoxControlTypeId, "combo box"),
    (UIA_DocumentControlTypeId, "document"),
    (UIA_TextControlTypeId, "text"),
    (UIA_ButtonControlTypeId, "button"),
    (UIA_CheckBoxControlTypeId, "check box"),
    (UIA_RadioButtonControlTypeId, "radio button"),
    (UIA_ListControlTypeId, "list"),
    (UIA_ListItemControlTypeId, "list item"),
    (UIA_SpinnerControlTypeId, "spinner"),
    (UIA_HyperlinkControlTypeId, "hyperlink"),
    (UIA_MenuItemControlTypeId, "menu item"),
    (UIA_TabItemControlTypeId, "tab item"),
    (UIA_TreeItemControlTypeId, "tree item"),
    (UIA_DataItemControlTypeId, "data item"),
    (UIA_DataGridControlTypeId, "data grid"),
    (UIA_TableControlTypeId, "table"),
    (UIA_GroupControlTypeId, "group"),
    (UIA_PaneControlTypeId, "pane"),
    (UIA_WindowControlTypeId, "window"),
    (UIA_CustomControlTypeId, "custom"),
];

fn role_name(control_type: UIA_CONTROLTYPE_ID) -> &'static str {
    ROLES
        .iter()
        .find(|(t, _)| *t == control_type)
        .map_or("other", |(_, name)| name)
}

/// The bounding rectangle in physical pixels (the unit the capture uses), whatever the DPI
/// awareness of the process; `None` for an empty one (the mask then covers the whole screen).
fn screen_rect(element: &IUIAutomationElement) -> Option<Rect> {
    let _physical = PhysicalPixels::enter();
    // SAFETY: a property read on a valid element.
    let r = unsafe { element.CurrentBoundingRectangle() }.ok()?;
    let width = u32::try_from(r.right.checked_sub(r.left)?).ok()?;
    let height = u32::try_from(r.bottom.checked_sub(r.top)?).ok()?;
    (width > 0 && height > 0).then_some(Rect {
        x: r.left,
        y: r.top,
        width,
        height,
    })
}

/// Whether the field holds text. A Win32 edit answers WM_GETTEXTLENGTH with its length (a
/// password edit too) without giving its text; other fields give their ValuePattern value,
/// of which only the length is kept (the string is freed at once).
fn has_value(
    element: &IUIAutomationElement,
    control_type: Option<UIA_CONTROLTYPE_ID>,
    hwnd: Option<HWND>,
) -> bool {
    if let Some(hwnd) = hwnd.filter(|_| control_type == Some(UIA_EditControlTypeId)) {
        if let Some(length) = text_length(hwnd) {
            return length > 0;
        }
    }
    value_length(element).is_some_and(|length| length > 0)
}

fn text_length(hwnd: HWND) -> Option<usize> {
    let mut length = 0usize;
    // SAFETY: WM_GETTEXTLENGTH takes no pointers; `length` is a valid out pointer for the
    // duration of the call; the timeout bounds a hung window.
    let sent = unsafe {
        SendMessageTimeoutW(
            hwnd,
            WM_GETTEXTLENGTH,
            WPARAM(0),
            LPARAM(0),
            SMTO_ABORTIFHUNG,
            TEXT_LENGTH_TIMEOUT_MS,
            Some(&raw mut length),
        )
    };
    (sent.0 != 0).then_some(length)
}

fn value_length(element: &IUIAutomationElement) -> Option<usize> {
    let value = current_value(element)?;
    Some(value.len())
}

/// The ValuePattern value; callers keep what they need and drop it.
fn current_value(element: &IUIAutomationElement) -> Option<BSTR> {
    // SAFETY: a pattern query on a valid element; the interface type is the pattern's.
    let pattern =
        unsafe { element.GetCurrentPatternAs::<IUIAutomationValuePattern>(UIA_ValuePatternId) }
            .ok()?;
    // SAFETY: a property read on a valid pattern.
    unsafe { pattern.CurrentValue() }.ok()
}

/// The URL of the web document the element is in: browsers give it as the document's value.
fn document_url(
    element: &IUIAutomationElement,
    walker: &IUIAutomationTreeWalker,
    documents: &IUIAutomationCacheRequest,
) -> Option<String> {
    let mut current = element.clone();
    for _ in 0..MAX_ANCESTORS {
        // SAFETY: a walk step on a valid walker, element and cache request.
        let parent = unsafe { walker.GetParentElementBuildCache(&current, documents) }.ok()?;
        // SAFETY: the control type is cached by `documents`.
        if unsafe { parent.CachedControlType() }.ok()? == UIA_DocumentControlTypeId {
            let url = current_value(&parent)?.to_string();
            return (url.contains("://") || url.starts_with("about:")).then_some(url);
        }
        current = parent;
    }
    None
}

/// The executable's name without `.exe` (`chrome`, `WINWORD`).
fn process_name(pid: u32) -> Option<String> {
    // SAFETY: no pointer arguments; the handle is closed below.
    let process = unsafe { OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, false, pid) }.ok()?;
    let mut path = [0u16; 1024];
    let mut length = path.len() as u32;
    // SAFETY: `path` is writable for `length` UTF-16 units, the size the call is given, and
    // `length` is a valid in/out pointer.
    let queried = unsafe {
        QueryFullProcessImageNameW(
            process,
            PROCESS_NAME_WIN32,
            PWSTR(path.as_mut_ptr()),
            &raw mut length,
        )
    };
    // SAFETY: the handle came from OpenProcess above and is closed once.
    let _ = unsafe { CloseHandle(process) };
    queried.ok()?;
    let path = String::from_utf16_lossy(path.get(..length as usize)?);
    let file = path.rsplit(['\\', '/']).next()?;
    let stem = match file.len().checked_sub(4) {
        Some(dot)
            if file
                .get(dot..)
                .is_some_and(|e| e.eq_ignore_ascii_case(".exe")) =>
        {
            &file[..dot]
        }
        _ => file,
    };
    (!stem.is_empty()).then(|| stem.to_string())
}

/// The title of the element's top-level window: the foreground window when the element's
/// process owns it (focus is there), else the root of the element's own window.
fn window_title(pid: Option<u32>, hwnd: Option<HWND>) -> Option<String> {
    // SAFETY: no arguments.
    let foreground = unsafe { GetForegroundWindow() };
    let mut owner = 0u32;
    if !foreground.is_invalid() {
        // SAFETY: `owner` is a valid out pointer for the duration of the call.
        unsafe { GetWindowThreadProcessId(foreground, Some(&raw mut owner)) };
    }
    let top = if !foreground.is_invalid() && pid == Some(owner) {
        foreground
    } else {
        // SAFETY: GetAncestor accepts any handle (a stale one yields a null handle).
        unsafe { GetAncestor(hwnd?, GA_ROOT) }
    };
    if top.is_invalid() {
        return None;
    }
    let mut title = [0u16; 512];
    // SAFETY: `title` is a writable buffer whose length the binding passes along; another
    // process's window gives its stored caption without being sent a message.
    let length = unsafe { GetWindowTextW(top, &mut title) };
    let title = String::from_utf16_lossy(title.get(..usize::try_from(length).ok()?)?);
    (!title.is_empty()).then_some(title)
}

fn text(value: windows_core::Result<BSTR>) -> Option<String> {
    value.ok().map(|v| v.to_string()).filter(|v| !v.is_empty())
}

/// Per-monitor DPI awareness for this thread while it lives: UI Automation then reports
/// physical pixels, whatever the awareness of the process.
struct PhysicalPixels {
    previous: DPI_AWARENESS_CONTEXT,
}

impl PhysicalPixels {
    fn enter() -> Self {
        // SAFETY: changes only this thread's DPI awareness; restored in Drop on the same
        // thread (the guard never leaves the function that made it).
        let previous =
            unsafe { SetThreadDpiAwarenessContext(DPI_AWARENESS_CONTEXT_PER_MONITOR_AWARE_V2) };
        Self { previous }
    }
}

impl Drop for PhysicalPixels {
    fn drop(&mut self) {
        // A null context: the call failed (Windows before 10 1607), nothing to restore.
        if !self.previous.0.is_null() {
            // SAFETY: restores the context SetThreadDpiAwarenessContext returned on this
            // thread.
            unsafe { SetThreadDpiAwarenessContext(self.previous) };
        }
    }
}
