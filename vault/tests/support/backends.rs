//! Real storage servers for the backend tests and the ingest benchmark: PostgreSQL 15 and
//! s3s-fs, started (never installed) here, stopped by PID and waited for on drop (PID 1 in
//! these containers does not reap orphans). `scripts/install-deps.sh` installs both; a missing
//! server makes the test FAIL with the command to run, never skip.
//!
//! One server of each kind is shared by the tests of a binary that run at the same time (it
//! stops when the last user drops it); each test gets its own database or bucket.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use uuid::Uuid;
use vigil_vault_store::blobs::{BlobStore, LocalBlobStore};
use vigil_vault_store::metadata::{MetadataStore, PgTls, PostgresStore, SqliteStore};
use vigil_vault_store::s3_blobs::{S3BlobStore, S3Settings};

const INSTALL_HINT: &str = "run scripts/install-deps.sh (apt postgresql; cargo install s3s-fs)";

/// Access key of the test S3 server (not a secret: loopback only).
pub const S3_KEY_ID: &str = "vigil-test-key";
/// Secret key of the test S3 server.
pub const S3_SECRET: &str = "vigil-test-secret-0123456789";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Runs `f` on a plain thread: the `postgres` client refuses to block inside an async runtime.
pub fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("helper thread")
}

/// Stops a child politely with `signal`, then by force after `grace`; always reaps it.
fn stop(child: &mut Child, signal: &str, grace: Duration) {
    let _ = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn shared<T>(slot: &Mutex<Weak<T>>, start: impl FnOnce() -> T) -> Arc<T> {
    let mut guard = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(running) = guard.upgrade() {
        return running;
    }
    let started = Arc::new(start());
    *guard = Arc::downgrade(&started);
    started
}

/// A private CA (in `ca_file`) and one server certificate it issued for `localhost` only, for
/// the storage servers the suite runs with TLS.
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA certificate, PEM.
    pub ca_file: PathBuf,
    /// The server certificate (then the CA), PEM.
    pub chain_pem: String,
    /// The server's key, PEM.
    pub key_pem: String,
}

impl TestCa {
    /// A new CA and a server certificate for `names`.
    pub fn new(names: &[&str]) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca = CertificateParams::default();
        ca.distinguished_name
            .push(DnType::CommonName, "Vigil test storage CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut leaf = CertificateParams::new(names.clone()).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        let leaf_key = KeyPair::generate().unwrap();
        let leaf_cert = leaf.signed_by(&leaf_key, &Issuer::new(ca, ca_key)).unwrap();
        let dir = tempfile::Builder::new()
            .prefix("vigil-ca-")
            .tempdir()
            .unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();
        Self {
            dir,
            ca_file,
            chain_pem: format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
            key_pem: leaf_key.serialize_pem(),
        }
    }

    /// The suite's CA, whose server certificate names `localhost` only.
    pub fn shared() -> &'static Self {
        static CA: OnceLock<TestCa> = OnceLock::new();
        CA.get_or_init(|| Self::new(&["localhost"]))
    }
}

/// A PostgreSQL 15 server in a temporary cluster, run as the `postgres` user.
pub struct PgServer {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
    /// TLS only (then TCP clients must use TLS; the suite's own admin work uses the socket).
    tls: bool,
}

static PG: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
static PG_TLS: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

impl PgServer {
    /// The shared server (started on first use).
    pub fn shared() -> Arc<Self> {
        shared(&PG, || Self::start(&[]))
    }

    /// The shared server that takes TCP clients over TLS only, with [`TestCa::shared`]'s
    /// certificate.
    pub fn shared_tls() -> Arc<Self> {
        shared(&PG_TLS, || Self::start_with(&[], Some(TestCa::shared())))
    }

    /// A new server; `settings` are extra `-c name=value` pairs.
    pub fn start(settings: &[&str]) -> Self {
        Self::start_with(settings, None)
    }

    /// A new server; with `tls`, TCP connections must use TLS with its certificate.
    pub fn start_with(settings: &[&str], tls: Option<&TestCa>) -> Self {
        let bin = PathBuf::from(
            std::env::var("VIGIL_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
        );
        assert!(
            bin.join("initdb").is_file() && bin.join("postgres").is_file(),
            "PostgreSQL 15 is not installed ({} has no initdb/postgres): {INSTALL_HINT}",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("vigil-pg-")
            .tempdir()
            .unwrap();
        // initdb and the server refuse root: the cluster belongs to `postgres`.
        set_mode(dir.path(), 0o755);
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&data)
            .status()
            .unwrap();
        assert!(chown.success(), "chown of the cluster folder failed");
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-D"])
            .arg(&data)
            .args(["-A", "trust", "-U", "vigil", "--no-sync"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut tls_settings = Vec::new();
        if let Some(ca) = tls {
            std::fs::write(data.join("server.crt"), &ca.chain_pem).unwrap();
            std::fs::write(data.join("server.key"), &ca.key_pem).unwrap();
            // Only the socket (the suite's admin work) goes without TLS.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .unwrap();
            let owned = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(data.join("server.crt"))
                .arg(data.join("server.key"))
                .status()
                .unwrap();
            assert!(owned.success());
            set_mode(&data.join("server.key"), 0o600);
            tls_settings = vec![
                "ssl=on",
                "ssl_cert_file=server.crt",
                "ssl_key_file=server.key",
            ];
        }
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        // setpriv execs the server itself, so our child *is* the postmaster: we reap it.
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ])
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(&data)
        .args(["-p", &port.to_string(), "-k"])
        .arg(&data)
        .args(["-c", "listen_addresses=127.0.0.1"]);
        for setting in settings.iter().chain(&tls_settings) {
            cmd.args(["-c", setting]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("setpriv runs postgres");
        let mut server = Self {
            child,
            port,
            dir,
            tls: tls.is_some(),
        };
        server.wait_ready();
        server
    }

    /// Connection text for the suite's own admin work: over the Unix socket (no TLS).
    fn admin_conninfo(&self, database: &str) -> String {
        format!(
            "host={} port={} user=vigil dbname={database}",
            self.dir.path().join("data").display(),
            self.port
        )
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let conninfo = self.admin_conninfo("postgres");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("server.log"));
                panic!("postgres exited ({status}): {}", log.unwrap_or_default());
            }
            let url = conninfo.clone();
            if off_runtime(move || postgres::Client::connect(&url, postgres::NoTls).is_ok()) {
                return;
            }
            assert!(Instant::now() < deadline, "postgres did not start in 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A URL for `database` (user `vigil`, trust authentication: no password); for the TLS
    /// server, by the certificate's name and with `sslmode=verify-full`.
    pub fn url(&self, database: &str) -> String {
        if self.tls {
            format!(
                "postgres://vigil@localhost:{}/{database}?sslmode=verify-full",
                self.port
            )
        } else {
            format!("postgres://vigil@127.0.0.1:{}/{database}", self.port)
        }
    }

    /// A fresh, empty database; returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!("t_{}", Uuid::new_v4().simple());
        let admin = self.admin_conninfo("postgres");
        let create = format!("CREATE DATABASE {name}");
        off_runtime(move || {
            let mut client = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
            client.batch_execute(&create).unwrap();
        });
        self.url(&name)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // SIGINT: fast shutdown (backends end, the postmaster reaps them, then exits).
        stop(&mut self.child, "-INT", Duration::from_secs(20));
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// An s3s-fs server over a temporary folder: each bucket is a folder under its root.
pub struct S3Server {
    child: Child,
    pub port: u16,
    root: tempfile::TempDir,
}

static S3: Mutex<Weak<S3Server>> = Mutex::new(Weak::new());

fn s3s_fs_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file());
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin/s3s-fs"))
        .filter(|p| p.is_file());
    on_path
        .or(cargo_home)
        .unwrap_or_else(|| panic!("s3s-fs is not installed: {INSTALL_HINT}"))
}

impl S3Server {
    /// The shared server (started on first use).
    pub fn shared() -> Arc<Self> {
        shared(&S3, Self::start)
    }

    /// A new server.
    pub fn start() -> Self {
        let binary = s3s_fs_binary();
        let root = tempfile::Builder::new()
            .prefix("vigil-s3-")
            .tempdir()
            .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3_KEY_ID, "--secret-key", S3_SECRET])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .env("RUST_LOG", "error")
            .spawn()
            .expect("s3s-fs starts");
        let mut server = Self { child, port, root };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("s3s-fs exited early ({status})");
            }
            assert!(Instant::now() < deadline, "s3s-fs did not listen in 30 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        server.port = port;
        server
    }

    /// The endpoint URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A fresh, empty bucket; returns its name.
    pub fn create_bucket(&self) -> String {
        let name = format!("b-{}", Uuid::new_v4().simple());
        std::fs::create_dir(self.root.path().join(&name)).unwrap();
        name
    }

    /// The folder holding a bucket's objects (keys are paths below it).
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.path().join(bucket)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        stop(&mut self.child, "-TERM", Duration::from_secs(5));
    }
}

/// HTTPS in front of a plain server: terminates TLS with a certificate of [`TestCa`] and relays
/// the bytes to `127.0.0.1:<backend>` (s3s-fs speaks plain HTTP only). The S3 client sees a
/// real TLS server and must verify it.
pub struct TlsFront {
    pub port: u16,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TlsFront {
    /// Listens on a free loopback port.
    pub fn start(backend: u16, ca: &TestCa) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_slice_iter(ca.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(ca.key_pem.as_bytes()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        // Bound here, not on the runtime: the caller may itself be on one.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let port = std_listener.local_addr().unwrap().port();
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) =
                        tokio::net::TcpStream::connect(("127.0.0.1", backend)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self {
            port,
            runtime: Some(runtime),
        }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The metadata backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meta {
    Sqlite,
    Postgres,
}

/// The blob backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blobs {
    Local,
    S3,
}

/// One combination of backends, each with fresh storage (a database, a bucket).
pub struct Backends {
    pub meta: Meta,
    pub blobs: Blobs,
    pg: Option<(Arc<PgServer>, String)>,
    s3: Option<(Arc<S3Server>, String)>,
    /// Both reached over TLS verified against this CA.
    tls: Option<(&'static TestCa, Option<TlsFront>)>,
}

/// Key prefix used in every test bucket (keys are `<prefix>/<session>/<name>`).
pub const S3_PREFIX: &str = "vault-a";

impl Backends {
    pub fn new(meta: Meta, blobs: Blobs) -> Self {
        Self::with(meta, blobs, false)
    }

    /// Like [`Backends::new`], with PostgreSQL taking TLS only and S3 behind HTTPS, both with
    /// certificates of [`TestCa::shared`] that the vault must verify.
    pub fn new_tls(meta: Meta, blobs: Blobs) -> Self {
        Self::with(meta, blobs, true)
    }

    fn with(meta: Meta, blobs: Blobs, tls: bool) -> Self {
        let pg = (meta == Meta::Postgres).then(|| {
            let server = if tls {
                PgServer::shared_tls()
            } else {
                PgServer::shared()
            };
            let url = server.create_database();
            (server, url)
        });
        let s3 = (blobs == Blobs::S3).then(|| {
            let server = S3Server::shared();
            let bucket = server.create_bucket();
            (server, bucket)
        });
        let tls = tls.then(|| {
            let ca = TestCa::shared();
            let front = s3
                .as_ref()
                .map(|(server, _)| TlsFront::start(server.port, ca));
            (ca, front)
        });
        Self {
            meta,
            blobs,
            pg,
            s3,
            tls,
        }
    }

    /// The S3 endpoint the vault is given.
    fn s3_endpoint(&self, server: &S3Server) -> String {
        match &self.tls {
            Some((_, Some(front))) => format!("https://localhost:{}", front.port),
            _ => server.endpoint(),
        }
    }

    /// The S3 endpoint URL, when there is an S3 backend.
    pub fn s3_endpoint_url(&self) -> Option<String> {
        self.s3.as_ref().map(|(server, _)| self.s3_endpoint(server))
    }

    /// The CA file the vault is told to trust, when the backends use TLS.
    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|(ca, _)| ca.ca_file.clone())
    }

    /// The database URL (PostgreSQL only).
    pub fn pg_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|(_, url)| url.as_str())
    }

    /// Connection text for the suite to inspect the database itself (over the server's Unix
    /// socket, without TLS): PostgreSQL only.
    pub fn pg_inspect_url(&self) -> Option<String> {
        self.pg.as_ref().map(|(server, url)| {
            let path = url.split('?').next().unwrap_or(url);
            let database = path.rsplit('/').next().unwrap_or("postgres");
            server.admin_conninfo(database)
        })
    }

    /// `vigil-vault init` flags choosing these backends.
    pub fn init_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        let ca = self.ca_file().map(|f| f.display().to_string());
        if self.pg.is_some() {
            args.extend(["--metadata".into(), "postgres".into()]);
            if let Some(ca) = &ca {
                args.extend(["--postgres-ca-file".into(), ca.clone()]);
            }
        }
        if let Some((server, bucket)) = &self.s3 {
            if let Some(ca) = &ca {
                args.extend(["--s3-ca-file".into(), ca.clone()]);
            }
            args.extend([
                "--blobs".into(),
                "s3".into(),
                "--s3-endpoint".into(),
                self.s3_endpoint(server),
                "--s3-bucket".into(),
                bucket.clone(),
                "--s3-prefix".into(),
                S3_PREFIX.into(),
            ]);
        }
        args
    }

    /// Environment for every `vigil-vault` command (the secrets).
    pub fn envs(&self) -> Vec<(&'static str, String)> {
        let mut envs = Vec::new();
        if let Some((_, url)) = &self.pg {
            envs.push(("VIGIL_VAULT_PG_URL", url.clone()));
        }
        if self.s3.is_some() {
            envs.push(("AWS_ACCESS_KEY_ID", S3_KEY_ID.into()));
            envs.push(("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()));
        }
        envs
    }

    /// The metadata store itself (SQLite in `dir`, or the test database).
    pub fn metadata_store(&self, dir: &Path) -> Box<dyn MetadataStore> {
        match &self.pg {
            None => Box::new(SqliteStore::open(&dir.join("metadata.sqlite")).unwrap()),
            Some((_, url)) => {
                let url = url.clone();
                let tls = PgTls {
                    mode: None,
                    ca_file: self.ca_file(),
                };
                off_runtime(move || Box::new(PostgresStore::open_with(&url, 2, &tls).unwrap()))
            }
        }
    }

    /// The blob store itself (a folder in `dir`, or the test bucket).
    pub fn blob_store(&self, dir: &Path) -> Box<dyn BlobStore> {
        match &self.s3 {
            None => Box::new(LocalBlobStore::new(dir.join("blobs"), dir.join("staging")).unwrap()),
            Some((server, bucket)) => Box::new(
                S3BlobStore::new(&S3Settings {
                    endpoint: Some(self.s3_endpoint(server)),
                    bucket: bucket.clone(),
                    region: "us-east-1".into(),
                    prefix: S3_PREFIX.into(),
                    access_key_id: S3_KEY_ID.into(),
                    secret_access_key: S3_SECRET.into(),
                    ca_file: self.ca_file(),
                })
                .unwrap(),
            ),
        }
    }

    /// Where the backend keeps blob files on disk: `blobs/` of the data folder, or the
    /// bucket's folder under s3s-fs's root plus the prefix.
    pub fn blob_root(&self, data: &Path) -> PathBuf {
        match &self.s3 {
            None => data.join("blobs"),
            Some((server, bucket)) => server.bucket_dir(bucket).join(S3_PREFIX),
        }
    }

    /// Every file under the backend's storage (blob root and, for S3, the whole bucket), as
    /// paths relative to it: proof of what is visible, staging included.
    pub fn all_files(&self, data: &Path) -> Vec<String> {
        let root = match &self.s3 {
            None => data.to_owned(),
            Some((server, bucket)) => server.bucket_dir(bucket),
        };
        let mut out = Vec::new();
        walk(&root, &root, &mut out);
        out.sort();
        out
    }
}

/// Every file below `dir` (relative paths), sorted.
pub fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).unwrap().display().to_string());
        }
    }
}
