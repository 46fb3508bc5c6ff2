//! A TLS-terminating loopback proxy between the agent and the vault that can rewrite the
//! vault's policy answers in transit: the attacker of issue 5's acceptance. It has its own CA
//! (the agent is enrolled through it and pins that CA), forwards every request to the real
//! vault over TLS (trusting the vault's CA), one upstream connection per request, and closes
//! the agent's connection after each answer.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// A rewrite of a whole answer body.
pub type BodyRewrite = Arc<dyn Fn(&[u8]) -> Vec<u8> + Send + Sync>;

/// What the proxy does to a policy answer (`200` of `POST /v1/policy/poll`).
#[derive(Clone)]
pub enum Rewrite {
    /// Passes it through.
    Nothing,
    /// Replaces bytes in the signed statement, leaving the signature as it was.
    Replace(String, String),
    /// Replaces the whole answer with the result of this function of the real one.
    With(BodyRewrite),
}

/// A running proxy; stops accepting when dropped.
pub struct TlsProxy {
    port: u16,
    ca_pem: String,
    rewrite: Arc<Mutex<Rewrite>>,
    rewritten: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsProxy {
    /// Starts a proxy to the vault at `127.0.0.1:upstream_port`, whose CA is in `vault_ca`.
    pub fn start(upstream_port: u16, vault_ca: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::default();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let leaf = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf_cert.der().clone()],
                PrivateKeyDer::from_pem_slice(leaf_key.serialize_pem().as_bytes()).unwrap(),
            )
            .unwrap();
        let mut server = server;
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        let server = Arc::new(server);
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(vault_ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            ca_pem: ca_cert.pem(),
            rewrite: Arc::new(Mutex::new(Rewrite::Nothing)),
            rewritten: Arc::new(AtomicUsize::new(0)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (stop, rewrite, rewritten) = (
            proxy.stop.clone(),
            proxy.rewrite.clone(),
            proxy.rewritten.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((tcp, _)) => {
                        let (server, client) = (server.clone(), client.clone());
                        let (rewrite, rewritten) = (rewrite.clone(), rewritten.clone());
                        std::thread::spawn(move || {
                            let _ = serve(tcp, server, client, upstream_port, &rewrite, &rewritten);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        proxy
    }

    /// The URL the agent enrolls with.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The proxy's CA certificate (PEM), for the agent to pin.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Sets what happens to the next policy answers.
    pub fn set(&self, rewrite: Rewrite) {
        *self.rewrite.lock().unwrap() = rewrite;
    }

    /// Policy answers rewritten so far.
    pub fn rewritten(&self) -> usize {
        self.rewritten.load(Ordering::SeqCst)
    }
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads one HTTP/1.1 message head and its `Content-Length` body.
fn read_message(stream: &mut impl Read) -> std::io::Result<Option<(String, Vec<u8>)>> {
    let mut data = Vec::new();
    let mut byte = [0u8; 1];
    while !data.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Ok(None);
        }
        data.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&data).into_owned();
    let length = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body)?;
    Ok(Some((head, body)))
}

fn without_header(head: &str, name: &str) -> String {
    head.split("\r\n")
        .filter(|l| {
            !l.split_once(':')
                .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

fn serve(
    tcp: TcpStream,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    upstream_port: u16,
    rewrite: &Mutex<Rewrite>,
    rewritten: &AtomicUsize,
) -> std::io::Result<()> {
    tcp.set_nonblocking(false)?;
    let tls = rustls::ServerConnection::new(server).map_err(std::io::Error::other)?;
    let mut downstream = rustls::StreamOwned::new(tls, tcp);
    let Some((head, body)) = read_message(&mut downstream)? else {
        return Ok(());
    };
    let policy_poll = head.starts_with("POST /v1/policy/poll ");
    // Upstream, one request per connection.
    let up_tcp = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let up_tls = rustls::ClientConnection::new(client, name).map_err(std::io::Error::other)?;
    let mut upstream = rustls::StreamOwned::new(up_tls, up_tcp);
    let head_up = without_header(head.trim_end_matches("\r\n"), "connection");
    upstream.write_all(format!("{head_up}\r\nConnection: close\r\n\r\n").as_bytes())?;
    upstream.write_all(&body)?;
    upstream.flush()?;
    let Some((answer_head, mut answer)) = read_message(&mut upstream)? else {
        return Ok(());
    };
    if policy_poll && answer_head.starts_with("HTTP/1.1 200") {
        let rule = rewrite.lock().unwrap().clone();
        let changed = match rule {
            Rewrite::Nothing => None,
            Rewrite::Replace(from, to) => {
                let text = String::from_utf8_lossy(&answer).into_owned();
                Some(text.replacen(&from, &to, 1).into_bytes())
            }
            Rewrite::With(f) => Some(f(&answer)),
        };
        if let Some(changed) = changed {
            rewritten.fetch_add(1, Ordering::SeqCst);
            answer = changed;
        }
    }
    let head_down = without_header(
        &without_header(answer_head.trim_end_matches("\r\n"), "content-length"),
        "connection",
    );
    downstream.write_all(
        format!(
            "{head_down}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            answer.len()
        )
        .as_bytes(),
    )?;
    downstream.write_all(&answer)?;
    downstream.flush()?;
    downstream.conn.send_close_notify();
    let _ = downstream.flush();
    Ok(())
}
