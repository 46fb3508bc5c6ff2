//! The default render endpoint of the eCommunications role: where softphones play calls. It can
//! differ from the default (console) render device, which the system-audio source records.
//!
//! cpal only follows the console default, so the endpoint is asked from the MMDevice API and
//! matched to the cpal device with the same endpoint ID (cpal's WASAPI `Device::id()` is
//! `IMMDevice::GetId`); the friendly name is the fallback should the two ever disagree.

use std::ffi::c_void;

use cpal::traits::{DeviceTrait, HostTrait};
use windows::core::PWSTR;
use windows::Win32::Devices::Properties::DEVPKEY_Device_FriendlyName;
use windows::Win32::Foundation::{PROPERTYKEY, RPC_E_CHANGED_MODE};
use windows::Win32::Media::Audio::{
    eCommunications, eRender, IMMDevice, IMMDeviceEnumerator, MMDeviceEnumerator,
};
use windows::Win32::System::Com::StructuredStorage::{PropVariantClear, PropVariantToStringAlloc};
use windows::Win32::System::Com::{
    CoCreateInstance, CoInitializeEx, CoTaskMemFree, CoUninitialize, CLSCTX_ALL,
    COINIT_MULTITHREADED, STGM_READ,
};

use crate::{CaptureError, CaptureErrorKind};

fn unavailable(what: &str, e: impl std::fmt::Display) -> CaptureError {
    CaptureError::new(CaptureErrorKind::BackendUnavailable, format!("{what}: {e}"))
}

/// The cpal device of the default communications render endpoint, and its id.
pub(super) fn communications_render_device(
    host: &cpal::Host,
) -> Result<(cpal::Device, String), CaptureError> {
    ensure_com_initialized()?;
    let endpoint = default_communications_endpoint()?;
    let id = endpoint_id(&endpoint)?;
    let name = friendly_name(&endpoint);
    let mut outputs: Vec<cpal::Device> = host
        .devices()
        .map_err(|e| unavailable("listing audio devices", e))?
        .filter(|d| d.supports_output())
        .collect();
    let cpal_id = |d: &cpal::Device| d.id().ok().map(|i| i.id().to_string());
    let by_id = outputs
        .iter()
        .position(|d| cpal_id(d).as_deref() == Some(id.as_str()));
    let by_name = || {
        let name = name.as_deref()?;
        outputs
            .iter()
            .position(|d| d.description().is_ok_and(|desc| desc.name() == name))
    };
    let Some(index) = by_id.or_else(by_name) else {
        return Err(CaptureError::new(
            CaptureErrorKind::DeviceNotFound,
            format!(
                "communications output {} ({id}) is not among the audio devices",
                name.as_deref().unwrap_or("without a name")
            ),
        ));
    };
    let device = outputs.swap_remove(index);
    // Report cpal's id: the supervisor compares it with the system-audio device's.
    let device_id = cpal_id(&device).unwrap_or(id);
    Ok((device, device_id))
}

/// This thread's membership of the COM multithreaded apartment, left when the thread ends.
struct ComApartment {
    /// CoInitializeEx succeeded (S_OK or S_FALSE), so CoUninitialize must balance it.
    must_uninitialize: bool,
}

thread_local! {
    static COM_APARTMENT: Result<ComApartment, windows::core::HRESULT> = ComApartment::enter();
}

impl ComApartment {
    #[allow(unsafe_code)]
    fn enter() -> Result<Self, windows::core::HRESULT> {
        // SAFETY: CoInitializeEx has no memory preconditions (the reserved pointer is None); a
        // success is balanced by CoUninitialize on this same thread in `Drop` (thread exit).
        let result = unsafe { CoInitializeEx(None, COINIT_MULTITHREADED) };
        if result == RPC_E_CHANGED_MODE {
            // The thread is already single-threaded (cpal initialises COM that way): COM is
            // usable as it is, and that CoInitializeEx is not ours to balance.
            return Ok(Self {
                must_uninitialize: false,
            });
        }
        result.ok().map_err(|e| e.code())?;
        Ok(Self {
            must_uninitialize: true,
        })
    }
}

impl Drop for ComApartment {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        if self.must_uninitialize {
            // SAFETY: balances the successful CoInitializeEx of `enter` on the same thread
            // (thread-locals are dropped on the thread that created them).
            unsafe { CoUninitialize() };
        }
    }
}

/// Initialises COM on the calling thread once; later calls only check the first result.
fn ensure_com_initialized() -> Result<(), CaptureError> {
    COM_APARTMENT.with(|apartment| match apartment {
        Ok(_) => Ok(()),
        Err(code) => Err(unavailable("CoInitializeEx", code.message())),
    })
}

#[allow(unsafe_code)]
fn default_communications_endpoint() -> Result<IMMDevice, CaptureError> {
    // SAFETY: COM is initialised on this thread (`ensure_com_initialized` ran first), and
    // MMDeviceEnumerator is the class that implements IMMDeviceEnumerator; the returned
    // interface is reference-counted by the `windows` crate.
    let enumerator: IMMDeviceEnumerator =
        unsafe { CoCreateInstance(&MMDeviceEnumerator, None, CLSCTX_ALL) }
            .map_err(|e| unavailable("MMDeviceEnumerator", e))?;
    // SAFETY: a method call on a live enumerator with valid enum values; the endpoint comes
    // back owned (and E_NOTFOUND when there is no render device at all).
    unsafe { enumerator.GetDefaultAudioEndpoint(eRender, eCommunications) }.map_err(|e| {
        CaptureError::new(
            CaptureErrorKind::DeviceNotFound,
            format!("no communications output: {e}"),
        )
    })
}

/// The endpoint ID string, the same one cpal's `Device::id()` reports.
#[allow(unsafe_code)]
fn endpoint_id(endpoint: &IMMDevice) -> Result<String, CaptureError> {
    // SAFETY: a method call on a live endpoint; on success it hands us a NUL-terminated string
    // allocated with CoTaskMemAlloc, which `take_com_string` reads once and frees once.
    let raw = unsafe { endpoint.GetId() }.map_err(|e| unavailable("IMMDevice::GetId", e))?;
    take_com_string(raw).ok_or_else(|| unavailable("IMMDevice::GetId", "not UTF-16"))
}

/// The endpoint's friendly name ("Headset Earphone (Jabra Link 380)"), as cpal names devices.
#[allow(unsafe_code)]
fn friendly_name(endpoint: &IMMDevice) -> Option<String> {
    // The PKEY and the DEVPKEY of the friendly name are the same GUID and property id.
    let key = PROPERTYKEY {
        fmtid: DEVPKEY_Device_FriendlyName.fmtid,
        pid: DEVPKEY_Device_FriendlyName.pid,
    };
    // SAFETY: method calls on a live endpoint and its property store; `key` outlives the call.
    // GetValue hands us an owned PROPVARIANT, which is converted and then cleared exactly once.
    unsafe {
        let store = endpoint.OpenPropertyStore(STGM_READ).ok()?;
        let mut value = store.GetValue(&key).ok()?;
        let text = PropVariantToStringAlloc(&value);
        let _ = PropVariantClear(&mut value);
        take_com_string(text.ok()?)
    }
}

/// Copies a string COM allocated for us and frees it.
#[allow(unsafe_code)]
fn take_com_string(raw: PWSTR) -> Option<String> {
    if raw.is_null() {
        return None;
    }
    // SAFETY: callers pass a NUL-terminated string from CoTaskMemAlloc that they own and do not
    // use again; it is read here once, then freed once.
    unsafe {
        let text = raw.to_string().ok();
        CoTaskMemFree(Some(raw.0 as *const c_void));
        text
    }
}
