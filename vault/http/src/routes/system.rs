//! The service itself: `GET /health`, `GET /metrics`, `GET /openapi.json`, and the answer to
//! unknown paths.

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};

/// `GET /health`: 200 while the metadata store answers, else 503.
pub(crate) async fn health(State(app): State<AppState>) -> ApiResult {
    blocking(move || app.vault.store().ping())
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "health check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "metadata store unavailable",
            )
        })?;
    Ok(Json(serde_json::json!({ "status": "ok" })).into_response())
}

/// `GET /metrics` (the `metrics` permission: a monitoring account's API token): Prometheus
/// text, with the gap figures of every session, computed at most every 15 s.
pub(crate) async fn metrics(State(app): State<AppState>) -> Response {
    let figures = match app.metrics.cached_gaps() {
        Some(figures) => figures,
        None => {
            let figures = gap_figures(&app).await;
            app.metrics.cache_gaps(figures);
            figures
        }
    };
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        app.metrics.render_with_gaps(figures),
    )
        .into_response()
}

/// Missing segments in transit, lost, and unreported, over every session (ranges, never
/// enumerated).
async fn gap_figures(app: &AppState) -> crate::metrics::GapFigures {
    let vault = app.vault.clone();
    blocking(move || vigil_vault_core::gaps::gaps(vault.store(), None))
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|all| {
            let count = |r: &[(i64, i64)]| r.iter().map(|(a, b)| (b - a + 1) as u64).sum::<u64>();
            let mut f = crate::metrics::GapFigures::default();
            for g in &all {
                f.in_transit += count(&g.in_transit);
                f.lost += count(&g.lost);
                if !g.reported {
                    f.unreported += count(&g.missing);
                }
            }
            f
        })
        .unwrap_or_default()
}

/// `GET /openapi.json`.
pub(crate) async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::OPENAPI_JSON,
    )
        .into_response()
}

/// Unknown paths answer in JSON like every other refusal. A segment path of the wrong shape
/// (`/v1/segments/../../etc/1`) is an upload refused for its ids.
pub(crate) async fn not_found(State(app): State<AppState>, uri: Uri) -> ApiError {
    if uri.path().starts_with("/v1/segments/") {
        app.metrics.rejected("bad_id");
        return ApiError::bad_request(
            "bad_id",
            "segment path must be /v1/segments/{session}/{sequence}",
        );
    }
    ApiError::not_found("no such resource")
}
