//! Talking to accessible objects on the AT-SPI bus: proxies without property caching, screen
//! extents, and the errors that mean an object is gone (shared by the focus pump and the field
//! poller).

use std::time::Duration;

use atspi::proxy::component::ComponentProxy;
use atspi::zbus::{self, proxy::CacheProperties};
use atspi::{CoordType, ObjectRefOwned};

use crate::Rect;

/// Bounds the walk up to the document and the application (cycles, huge trees).
pub(super) const MAX_ANCESTORS: usize = 64;

/// How often watched fields are sampled.
pub(super) const FIELD_POLL: Duration = Duration::from_millis(100);

/// D-Bus errors that mean the object (or its whole application) no longer exists.
pub(super) const GONE_ERRORS: [&str; 4] = [
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.UnknownMethod",
];

/// A proxy for one interface of an accessible, without property caching (which would cost a
/// round trip for every property at creation).
pub(super) async fn proxy<'c, P>(
    conn: &'c zbus::Connection,
    object: &ObjectRefOwned,
) -> zbus::Result<P>
where
    P: zbus::proxy::Defaults + From<zbus::Proxy<'c>>,
{
    let name = object
        .name()
        .ok_or_else(|| zbus::Error::Failure("object reference without bus name".into()))?;
    proxy_at(conn, name.as_str(), object.path().as_str()).await
}

/// [`proxy`] for an object named by its bus name and path.
pub(super) async fn proxy_at<'c, P>(
    conn: &'c zbus::Connection,
    name: &str,
    path: &str,
) -> zbus::Result<P>
where
    P: zbus::proxy::Defaults + From<zbus::Proxy<'c>>,
{
    zbus::proxy::Builder::<P>::new(conn)
        .destination(name.to_string())?
        .path(path.to_string())?
        .cache_properties(CacheProperties::No)
        .build()
        .await
}

pub(super) async fn screen_rect(conn: &zbus::Connection, item: &ObjectRefOwned) -> Option<Rect> {
    let name = item.name()?;
    screen_rect_at(conn, name.as_str(), item.path().as_str()).await
}

pub(super) async fn screen_rect_at(
    conn: &zbus::Connection,
    name: &str,
    path: &str,
) -> Option<Rect> {
    let component = proxy_at::<ComponentProxy>(conn, name, path).await.ok()?;
    let (x, y, width, height) = component.get_extents(CoordType::Screen).await.ok()?;
    Some(Rect {
        x,
        y,
        width: u32::try_from(width).ok()?,
        height: u32::try_from(height).ok()?,
    })
}
