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
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use uuid::Uuid;
use vigil_vault_store::blobs::{BlobStore, LocalBlobStore};
use vigil_vault_store::metadata::{MetadataStore, PostgresStore, SqliteStore};
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

/// A PostgreSQL 15 server in a temporary cluster, run as the `postgres` user.
pub struct PgServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

static PG: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());

impl PgServer {
    /// The shared server (started on first use).
    pub fn shared() -> Arc<Self> {
        shared(&PG, || Self::start(&[]))
    }

    /// A new server; `settings` are extra `-c name=value` pairs.
    pub fn start(settings: &[&str]) -> Self {
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
        for setting in settings {
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
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let conninfo = self.url("postgres");
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self._dir.path().join("server.log"));
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

    /// A URL for `database` (user `vigil`, trust authentication: no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://vigil@127.0.0.1:{}/{database}", self.port)
    }

    /// A fresh, empty database; returns its URL.
    pub fn create_database(&self) -> String {
        let name = format!("t_{}", Uuid::new_v4().simple());
        let admin = self.url("postgres");
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
}

/// Key prefix used in every test bucket (keys are `<prefix>/<session>/<name>`).
pub const S3_PREFIX: &str = "vault-a";

impl Backends {
    pub fn new(meta: Meta, blobs: Blobs) -> Self {
        let pg = (meta == Meta::Postgres).then(|| {
            let server = PgServer::shared();
            let url = server.create_database();
            (server, url)
        });
        let s3 = (blobs == Blobs::S3).then(|| {
            let server = S3Server::shared();
            let bucket = server.create_bucket();
            (server, bucket)
        });
        Self {
            meta,
            blobs,
            pg,
            s3,
        }
    }

    /// The database URL (PostgreSQL only).
    pub fn pg_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|(_, url)| url.as_str())
    }

    /// `vigil-vault init` flags choosing these backends.
    pub fn init_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.pg.is_some() {
            args.extend(["--metadata".into(), "postgres".into()]);
        }
        if let Some((server, bucket)) = &self.s3 {
            args.extend([
                "--blobs".into(),
                "s3".into(),
                "--s3-endpoint".into(),
                server.endpoint(),
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
                off_runtime(move || Box::new(PostgresStore::open(&url, 2).unwrap()))
            }
        }
    }

    /// The blob store itself (a folder in `dir`, or the test bucket).
    pub fn blob_store(&self, dir: &Path) -> Box<dyn BlobStore> {
        match &self.s3 {
            None => Box::new(LocalBlobStore::new(dir.join("blobs"), dir.join("staging")).unwrap()),
            Some((server, bucket)) => Box::new(
                S3BlobStore::new(&S3Settings {
                    endpoint: Some(server.endpoint()),
                    bucket: bucket.clone(),
                    region: "us-east-1".into(),
                    prefix: S3_PREFIX.into(),
                    access_key_id: S3_KEY_ID.into(),
                    secret_access_key: S3_SECRET.into(),
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
