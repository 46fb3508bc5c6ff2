//! The console (issue 14): the web pages supervisors, QA and compliance use, built from `ui/`
//! (TypeScript, Preact, esbuild) into `ui/dist/` and embedded in the binary at build time, so
//! `cargo build` alone gives a vault that serves it. The pages call only the documented `/v1`
//! API with the same session cookie and CSRF header as any client: the console has no
//! authorization path of its own. A strict Content-Security-Policy (every answer carries it,
//! see `guard::security_headers`) lets only these files run.

use axum::body::{Body, Bytes};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::RustEmbed)]
#[folder = "../../ui/dist/"]
struct Bundle;

/// The Content-Security-Policy of every answer: scripts, styles and data from this origin only,
/// media from this origin or the player's blob URLs, no framing, no inline code.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; media-src 'self' blob:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

fn asset(name: &str, content_type: &'static str) -> Response {
    match Bundle::get(name) {
        // Embedded bytes are served as they are, not copied per request.
        Some(file) => {
            let body = match file.data {
                std::borrow::Cow::Borrowed(bytes) => Body::from(Bytes::from_static(bytes)),
                std::borrow::Cow::Owned(bytes) => Body::from(bytes),
            };
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            "the console was not built into this binary (ui/dist is missing)",
        )
            .into_response(),
    }
}

/// `GET /`: the console's page.
pub(crate) async fn index() -> Response {
    asset("index.html", "text/html; charset=utf-8")
}

/// `GET /app.js`.
pub(crate) async fn script() -> Response {
    asset("app.js", "text/javascript; charset=utf-8")
}

/// `GET /app.css`.
pub(crate) async fn style() -> Response {
    asset("app.css", "text/css; charset=utf-8")
}
