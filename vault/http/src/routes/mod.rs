//! The handlers, one module per resource. Each parses its request, calls into the domain on a
//! blocking thread, and turns the outcome into an answer or an [`crate::error::ApiError`].

pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod holds;
pub(crate) mod live;
pub(crate) mod policy;
pub(crate) mod recordings;
pub(crate) mod redactions;
pub(crate) mod session;
pub(crate) mod system;
pub(crate) mod users;
