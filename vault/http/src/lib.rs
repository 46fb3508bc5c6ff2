//! The vault's HTTPS API (brief §6): the axum router with its guard (who calls, what their role
//! may do), the handlers grouped by resource, one error type that every refusal becomes, and the
//! OpenAPI document. Every handler parses its request, calls into `vigil-vault-core` on a
//! blocking thread and turns the outcome into an answer; no rule of the vault lives here.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app;
mod console;
mod error;
mod extract;
mod guard;
mod limits;
pub mod metrics;
pub mod openapi;
mod origin;
mod routes;
pub mod server;
mod upload_body;

pub use server::{
    router, ServeError, ServeOptions, Server, DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_REQUEST_TIMEOUT,
};
