//! Reading AX attributes, and what identifies a focused element: its role and subrole, label,
//! identifier, rectangle, whether it holds text (from its character count: the text is never
//! read), its window's title and, in a browser, the URL of its web area.
#![allow(unsafe_code)] // AXUIElementCopyAttributeValue and AXValueGetValue take out pointers

use std::ptr::{self, NonNull};

use objc2_application_services::{AXError, AXUIElement, AXValue, AXValueType};
use objc2_core_foundation::{CFNumber, CFRetained, CFString, CFType, CGPoint, CGSize, CFURL};

use super::displays;
use crate::FieldInfo;

/// Bounds the walk up to the web area (cycles, huge trees).
const MAX_ANCESTORS: usize = 64;

/// The AX names in use: `CFSTR` macros in the headers, so absent from the bindings.
pub(super) struct Names {
    pub(super) role: CFRetained<CFString>,
    pub(super) subrole: CFRetained<CFString>,
    pub(super) title: CFRetained<CFString>,
    pub(super) description: CFRetained<CFString>,
    pub(super) placeholder: CFRetained<CFString>,
    pub(super) title_element: CFRetained<CFString>,
    pub(super) value: CFRetained<CFString>,
    pub(super) identifier: CFRetained<CFString>,
    pub(super) dom_identifier: CFRetained<CFString>,
    pub(super) position: CFRetained<CFString>,
    pub(super) size: CFRetained<CFString>,
    pub(super) number_of_characters: CFRetained<CFString>,
    pub(super) url: CFRetained<CFString>,
    pub(super) parent: CFRetained<CFString>,
    pub(super) window: CFRetained<CFString>,
    pub(super) focused_element: CFRetained<CFString>,
    pub(super) focused_application: CFRetained<CFString>,
    /// Chromium and Electron build their web accessibility tree only once this is set.
    pub(super) manual_accessibility: CFRetained<CFString>,
    pub(super) focus_changed: CFRetained<CFString>,
    pub(super) deactivated: CFRetained<CFString>,
}

impl Names {
    pub(super) fn new() -> Self {
        let s = CFString::from_static_str;
        Self {
            role: s("AXRole"),
            subrole: s("AXSubrole"),
            title: s("AXTitle"),
            description: s("AXDescription"),
            placeholder: s("AXPlaceholderValue"),
            title_element: s("AXTitleUIElement"),
            value: s("AXValue"),
            identifier: s("AXIdentifier"),
            dom_identifier: s("AXDOMIdentifier"),
            position: s("AXPosition"),
            size: s("AXSize"),
            number_of_characters: s("AXNumberOfCharacters"),
            url: s("AXURL"),
            parent: s("AXParent"),
            window: s("AXWindow"),
            focused_element: s("AXFocusedUIElement"),
            focused_application: s("AXFocusedApplication"),
            manual_accessibility: s("AXManualAccessibility"),
            focus_changed: s("AXFocusedUIElementChanged"),
            deactivated: s("AXApplicationDeactivated"),
        }
    }
}

/// An attribute's value, or the AX error (`NoValue` when the element has none).
pub(super) fn copy(element: &AXUIElement, name: &CFString) -> Result<CFRetained<CFType>, AXError> {
    let mut value: *const CFType = ptr::null();
    // SAFETY: `value` is a valid out pointer for the duration of the call, which stores a +1
    // reference in it on success (the Copy rule).
    let error = unsafe { element.copy_attribute_value(name, NonNull::from(&mut value)) };
    if error != AXError::Success {
        return Err(error);
    }
    let value = NonNull::new(value.cast_mut()).ok_or(AXError::NoValue)?;
    // SAFETY: the +1 reference of the Copy function above, released once by CFRetained.
    Ok(unsafe { CFRetained::from_raw(value) })
}

fn attribute(element: &AXUIElement, name: &CFString) -> Option<CFRetained<CFType>> {
    copy(element, name).ok()
}

/// A string attribute, when it is one and not empty.
pub(super) fn string(element: &AXUIElement, name: &CFString) -> Option<String> {
    let value = attribute(element, name)?.downcast::<CFString>().ok()?;
    Some(value.to_string()).filter(|v| !v.is_empty())
}

/// An attribute that refers to another element (parent, window, title element).
pub(super) fn element(element: &AXUIElement, name: &CFString) -> Option<CFRetained<AXUIElement>> {
    attribute(element, name)?.downcast::<AXUIElement>().ok()
}

fn number(element: &AXUIElement, name: &CFString) -> Option<i64> {
    attribute(element, name)?
        .downcast::<CFNumber>()
        .ok()?
        .as_i64()
}

fn point(element: &AXUIElement, name: &CFString) -> Option<CGPoint> {
    let value = attribute(element, name)?.downcast::<AXValue>().ok()?;
    let mut point = CGPoint::ZERO;
    // SAFETY: `point` is a CGPoint, the type asked for (AXValueGetValue checks the value holds
    // one and writes nothing otherwise).
    let ok = unsafe { value.value(AXValueType::CGPoint, NonNull::from(&mut point).cast()) };
    ok.then_some(point)
}

fn size(element: &AXUIElement, name: &CFString) -> Option<CGSize> {
    let value = attribute(element, name)?.downcast::<AXValue>().ok()?;
    let mut size = CGSize::ZERO;
    // SAFETY: `size` is a CGSize, the type asked for (checked as for `point`).
    let ok = unsafe { value.value(AXValueType::CGSize, NonNull::from(&mut size).cast()) };
    ok.then_some(size)
}

/// Everything that identifies the focused element. Each query may fail (the element may
/// already be gone); what was learned is kept. Its text is never read.
pub(super) fn describe(element: &AXUIElement, names: &Names, app: Option<String>) -> FieldInfo {
    let role = string(element, &names.role);
    let subrole = string(element, &names.subrole);
    let password = [&role, &subrole]
        .iter()
        .any(|r| r.as_deref() == Some("AXSecureTextField"));
    let rect = point(element, &names.position)
        .zip(size(element, &names.size))
        .and_then(|(origin, size)| displays::to_pixels(origin, size));
    FieldInfo {
        app,
        window_title: self::element(element, &names.window)
            .and_then(|window| string(&window, &names.title)),
        url: web_url(element, names),
        name: label(element, names),
        role: if password {
            Some("password text".into())
        } else {
            role.as_deref().map(role_name)
        },
        // Web content: the HTML id (Safari, Chromium); native controls: the developer's id.
        id: string(element, &names.dom_identifier).or_else(|| string(element, &names.identifier)),
        rect,
        password,
        has_value: number(element, &names.number_of_characters).is_some_and(|n| n > 0),
        ..FieldInfo::default()
    }
}

/// The accessible name: the title, else the description, else the label element's text, else
/// the placeholder.
fn label(element: &AXUIElement, names: &Names) -> Option<String> {
    string(element, &names.title)
        .or_else(|| string(element, &names.description))
        .or_else(|| {
            let label = self::element(element, &names.title_element)?;
            string(&label, &names.value).or_else(|| string(&label, &names.title))
        })
        .or_else(|| string(element, &names.placeholder))
}

/// `AXTextField` → `text field`, `AXComboBox` → `combo box`.
fn role_name(role: &str) -> String {
    let mut name = String::new();
    for c in role.strip_prefix("AX").unwrap_or(role).chars() {
        if c.is_uppercase() && !name.is_empty() {
            name.push(' ');
        }
        name.extend(c.to_lowercase());
    }
    name
}

/// The URL of the web area the element is in (its nearest one: a payment iframe's own URL).
fn web_url(element: &AXUIElement, names: &Names) -> Option<String> {
    let mut current = self::element(element, &names.parent)?;
    for _ in 0..MAX_ANCESTORS {
        match string(&current, &names.role).as_deref() {
            Some("AXWebArea") => {
                let url = attribute(&current, &names.url)?.downcast::<CFURL>().ok()?;
                return Some(url.string().to_string());
            }
            Some("AXWindow" | "AXApplication") | None => return None,
            Some(_) => {}
        }
        current = self::element(&current, &names.parent)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::role_name;

    #[test]
    fn roles_read_as_words() {
        assert_eq!(role_name("AXTextField"), "text field");
        assert_eq!(role_name("AXComboBox"), "combo box");
        assert_eq!(role_name("AXTextArea"), "text area");
        assert_eq!(role_name("custom"), "custom");
    }
}
