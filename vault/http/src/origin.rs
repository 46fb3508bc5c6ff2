//! Who is asking: each request's client address (through trusted proxies) and user agent,
//! kept for the whole request so that every audit record it writes names them.

use std::net::IpAddr;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use vigil_vault_core::audit::Origin;

use crate::app::{AppState, ClientAddr};

tokio::task_local! {
    static ORIGIN: Origin;
}

/// The client's address as the vault attributes it (see [`client_ip`]), in each request's
/// extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

/// The address a request is attributed to: its peer, unless the peer is a trusted proxy; then
/// the rightmost `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its
/// left were written by the client and prove nothing). A malformed entry stops the walk at the
/// last proxy.
pub(crate) fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    let mut client = peer;
    for entry in forwarded.iter().rev() {
        match entry.parse::<IpAddr>() {
            Ok(addr) => {
                client = addr;
                if !trusted.contains(&addr) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

/// Middleware: attributes the request (extension [`ClientIp`]) and runs it with its
/// [`Origin`] in scope.
pub(crate) async fn stamp(
    State(app): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<ClientAddr>().map(|a| a.0.ip());
    let ip = peer.map(|p| {
        client_ip(
            p,
            request.headers(),
            &app.vault.config().http.trusted_proxies,
        )
    });
    if let Some(ip) = ip {
        request.extensions_mut().insert(ClientIp(ip));
    }
    let user_agent = request
        .headers()
        .get(axum::http::header::USER_AGENT)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let origin = Origin::client(ip, user_agent.as_deref());
    ORIGIN.scope(origin, next.run(request)).await
}

/// The current request's origin, if this task serves one.
pub(crate) fn current() -> Option<Origin> {
    ORIGIN.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value.parse().unwrap());
        h
    }

    #[test]
    fn only_a_trusted_proxy_can_name_the_client() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let client: IpAddr = "198.51.100.7".parse().unwrap();
        let headers = forwarded("203.0.113.9, 198.51.100.7");
        assert_eq!(
            client_ip(client, &headers, &[proxy]),
            client,
            "untrusted peer"
        );
        assert_eq!(
            client_ip(proxy, &headers, &[proxy]),
            client,
            "rightmost, not the spoofed left"
        );
        let chain = forwarded("198.51.100.7, 10.0.0.3");
        let proxies = ["10.0.0.2".parse().unwrap(), "10.0.0.3".parse().unwrap()];
        assert_eq!(client_ip(proxy, &chain, &proxies), client, "two proxies");
        assert_eq!(client_ip(proxy, &forwarded("junk"), &[proxy]), proxy);
        assert_eq!(client_ip(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }
}
