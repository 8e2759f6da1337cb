//! A `redis-server` of its own per test: started on 127.0.0.1, on a free port,
//! in a temporary directory, stopped by pid.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// redis-server

static NEXT_DIR: AtomicUsize = AtomicUsize::new(0);

/// A `redis-server` of its own: no persistence, 127.0.0.1 only, killed (by
/// pid) and its directory removed when dropped, even after a panic.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
    extra: Vec<String>,
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// With extra `redis-server` arguments (e.g. `--requirepass`).
    pub fn start_with(extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tower-bearer-redis-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            child: None,
            port: 0,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        // A free port can be taken between asking and binding: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on 127.0.0.1 (5 ports tried)");
    }

    fn spawn(&mut self) -> bool {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", self.dir.to_str().unwrap()])
            .args(["--logfile", "redis.log"])
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "the shared-tier tests need `redis-server` on the PATH \
                 (Debian: apt-get install -y redis-server; .ci/run installs it): {e}"
            )
        });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                eprintln!("redis-server exited ({status}) on port {}", self.port);
                return false;
            }
            if self.admin().is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// A server that also speaks TLS, with a certificate for `127.0.0.1`
    /// and `localhost` from `ca`; `rediss://` URL from [`tls_url`](Self::tls_url).
    #[cfg(feature = "rustls")]
    pub fn start_tls(ca: &super::tls::Ca, extra: &[&str]) -> (Self, u16) {
        let (cert, key) = ca.issue(&["127.0.0.1", "localhost"]);
        let dir = std::env::temp_dir().join(format!(
            "tower-bearer-redis-tls-{}-{}",
            std::process::id(),
            NEXT_DIR.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |name: &str, contents: &str| {
            let path = dir.join(name);
            std::fs::write(&path, contents).unwrap();
            path.to_str().unwrap().to_owned()
        };
        let (cert, key, ca) = (
            file("cert.pem", &cert),
            file("key.pem", &key),
            file("ca.pem", &ca.pem),
        );
        let tls_port = free_port().to_string();
        let mut args = vec![
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ];
        args.extend_from_slice(extra);
        let server = Self::start_with(&args);
        (server, tls_port.parse().unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("redis-server is not running")
            .id()
    }

    /// SIGKILL, by pid, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal(child.id(), "CONT");
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A new, empty server on the same port (as after a failover to a
    /// replica that had not seen the data).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("redis-server did not restart on port {}", self.port);
    }

    /// SIGSTOP: connections stay open, nothing answers.
    pub fn pause(&self) {
        signal(self.pid(), "STOP").unwrap();
    }

    /// SIGCONT.
    pub fn resume(&self) {
        signal(self.pid(), "CONT").unwrap();
    }

    fn admin(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(self.admin_url())?;
        let mut conn = client.get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        redis::cmd("PING").query::<String>(&mut conn)?;
        Ok(conn)
    }

    fn admin_url(&self) -> String {
        match self.extra.iter().position(|a| a == "--requirepass") {
            Some(i) => format!("redis://:{}@127.0.0.1:{}", self.extra[i + 1], self.port),
            None => self.url(),
        }
    }

    /// Runs one command as the test's own client (not counted as the
    /// replicas', see [`commands`](Self::commands)).
    pub fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        cmd.query(&mut self.admin().unwrap()).unwrap()
    }

    /// Runs a pipeline (or transaction) as the test's own client.
    pub fn pipeline<T: redis::FromRedisValue>(&self, pipe: &redis::Pipeline) -> T {
        pipe.query(&mut self.admin().unwrap()).unwrap()
    }

    pub fn flushall(&self) {
        self.query::<()>(&mut redis::cmd("FLUSHALL"));
    }

    /// Every key's name.
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.query(redis::cmd("KEYS").arg("*"));
        keys.sort();
        keys
    }

    /// `PTTL key`: -2 if there is none, -1 if it never expires.
    pub fn pttl(&self, key: &str) -> i64 {
        self.query(redis::cmd("PTTL").arg(key))
    }

    /// The subscribers of `channel`.
    pub fn subscribers(&self, channel: &str) -> u64 {
        let reply: Vec<redis::Value> = self.query(redis::cmd("PUBSUB").arg("NUMSUB").arg(channel));
        match reply.get(1) {
            Some(redis::Value::Int(n)) => *n as u64,
            _ => 0,
        }
    }

    /// `key` as `DUMP` serializes it, with its time to live, to put back
    /// later with [`restore`](Self::restore): Redis going back to an older
    /// write, as after a failover to a replica that missed the newer one.
    pub fn capture(&self, key: &str) -> (Vec<u8>, i64) {
        let dump: Vec<u8> = self.query(redis::cmd("DUMP").arg(key));
        (dump, self.pttl(key))
    }

    pub fn restore(&self, key: &str, (dump, pttl): &(Vec<u8>, i64)) {
        self.query::<()>(
            redis::cmd("RESTORE")
                .arg(key)
                .arg((*pttl).max(0))
                .arg(dump)
                .arg("REPLACE"),
        );
    }

    /// Calls per command since the start, from `INFO commandstats`, without
    /// what reading them costs (commands inside scripts count too).
    pub fn commands(&self) -> BTreeMap<String, u64> {
        let info: String = self.query(redis::cmd("INFO").arg("commandstats"));
        info.lines()
            .filter_map(|line| {
                let rest = line.strip_prefix("cmdstat_")?;
                let (name, stats) = rest.split_once(':')?;
                let calls = stats.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
                Some((name.to_owned(), calls.parse().ok()?))
            })
            // The test's own connections: the query and their handshake.
            .filter(|(name, _)| !matches!(name.as_str(), "info" | "ping" | "client|setinfo"))
            .collect()
    }

    /// Every key, and every value under it (hash fields and values, or the
    /// string), as bytes.
    pub fn dump(&self) -> Vec<(String, Vec<Vec<u8>>)> {
        let keys: Vec<String> = self.query(redis::cmd("KEYS").arg("*"));
        keys.into_iter()
            .map(|key| {
                let kind: String = self.query(redis::cmd("TYPE").arg(&key));
                let values = match kind.as_str() {
                    "hash" => self.query::<Vec<Vec<u8>>>(redis::cmd("HGETALL").arg(&key)),
                    "string" => vec![self.query::<Vec<u8>>(redis::cmd("GET").arg(&key))],
                    other => panic!("unexpected {other} under {key}"),
                };
                (key, values)
            })
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Sends `SIG<name>` to `pid` (through `sh`'s `kill`, present everywhere).
pub fn signal(pid: u32, name: &str) -> std::io::Result<()> {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{name} {pid}")])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "kill -{name} {pid}: {status}"
        )))
    }
}
