//! `GET /v1/agents/events`: the agents' live state as server-sent events, for the console's
//! agents page. An `agents` event carries the whole list the caller may see (as
//! `GET /v1/agents`) at once, then again after every heartbeat that changed it, and at least
//! every few seconds (an agent going silent becomes offline without a heartbeat). Opening the
//! stream is audited like a read of `/v1/agents`; a browser's EventSource reconnects by itself
//! when the request deadline ends the stream.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use vigil_vault_core::access::Principal;

use crate::app::AppState;
use crate::error::{blocking, ApiError, ApiResult};

/// The longest a live view waits without a heartbeat before it looks again.
const RECHECK: Duration = Duration::from_secs(5);
/// Heartbeats closer together than this are answered with one recomputation.
const SETTLE: Duration = Duration::from_millis(150);

/// Events on their way from the watcher task to the response.
struct Events(tokio::sync::mpsc::Receiver<Event>);

impl futures_core::Stream for Events {
    type Item = Result<Event, Infallible>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|e| e.map(Ok))
    }
}

/// The agents the caller may see, as JSON text.
async fn snapshot(app: &AppState, principal: &Principal) -> Result<String, ApiError> {
    let vault = app.vault.clone();
    let teams = principal.team_scope().map(<[String]>::to_vec);
    let agents = blocking(move || {
        let now = vigil_vault_core::clock::now().unix_timestamp();
        vigil_vault_core::live::agents(vault.store(), now, teams.as_deref())
    })
    .await??;
    Ok(serde_json::json!({ "agents": agents }).to_string())
}

/// `GET /v1/agents/events`.
pub(crate) async fn agent_events(
    State(app): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> ApiResult<Response> {
    let (vault, actor, scope) = (
        app.vault.clone(),
        principal.actor(),
        principal
            .team_scope()
            .map(|t| format!("teams={} (live)", t.join(","))),
    );
    blocking(move || {
        vigil_vault_core::audit::record(
            vault.store(),
            &actor,
            vigil_vault_core::audit::ACTION_AGENTS_READ,
            scope.or_else(|| Some("live".into())),
            None,
        )
    })
    .await??;
    let first = snapshot(&app, &principal).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut last = first;
        if tx
            .send(Event::default().event("agents").data(last.clone()))
            .await
            .is_err()
        {
            return;
        }
        loop {
            let changed = app.live_changed.notified();
            tokio::select! {
                () = changed => tokio::time::sleep(SETTLE).await,
                () = tokio::time::sleep(RECHECK) => {}
                () = tx.closed() => return,
            }
            let Ok(now) = snapshot(&app, &principal).await else {
                continue;
            };
            if now != last {
                last = now;
                let event = Event::default().event("agents").data(last.clone());
                if tx.send(event).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(Sse::new(Events(rx))
        .keep_alive(KeepAlive::default())
        .into_response())
}
