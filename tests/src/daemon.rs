//! A real `ops serve` process for a test: its own data directory, socket
//! and loopback port; stopped (SIGTERM, then waited for) on drop.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The `ops` binary built next to the test binaries (`cargo xtask test`
/// builds it with its eBPF objects), or `OPS_BIN`.
pub fn ops_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OPS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .expect("target profile dir")
        .join("ops");
    assert!(bin.exists(), "{} is missing: build it with `cargo xtask test` (or OPS_BUILD_EBPF=1 cargo build -p ops-user --bin ops)", bin.display());
    bin
}

pub const AK: &str = "opstest";
pub const SECRET: &str = "opstest-secret";

pub struct Daemon {
    child: Option<Child>,
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    extra: Vec<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Daemon {
    /// Start a daemon in a fresh directory named after `tag`.
    pub fn start(tag: &str, extra: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("opst-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut d = Self {
            child: None,
            socket: dir.join("ops.sock"),
            log: dir.join("daemon.log"),
            dir,
            port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(ops_bin())
            .arg("--socket")
            .arg(&self.socket)
            .arg("serve")
            .arg("--data-dir")
            .arg(self.dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--access-key", &format!("{AK}:{SECRET}")])
            .args(&self.extra)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn ops serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(self.socket.exists()
            && std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok())
        {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ops serve exited with {status}:\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "ops serve did not come up:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stop with `signal` and wait; returns the exit status.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, signal);
        child.wait().unwrap()
    }

    /// Stop cleanly and start again on the same directory and port.
    pub fn restart(&mut self) {
        let status = self.stop_with(nix::sys::signal::Signal::SIGTERM);
        assert!(
            status.success(),
            "ops serve exited with {status}:\n{}",
            self.log_text()
        );
        self.spawn();
    }

    /// Start again after a stop (e.g. after SIGKILL).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    /// The SDK pointed at this daemon.
    pub fn sdk(&self) -> crate::sdk::Sdk {
        crate::sdk::Sdk {
            endpoint: format!("127.0.0.1:{}", self.port),
            ak: AK.into(),
            secret: SECRET.into(),
            region: "cn-hangzhou".into(),
        }
    }

    /// Run the `ops` CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(ops_bin())
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run ops")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let status = self.stop_with(nix::sys::signal::Signal::SIGTERM);
            if !status.success() && !std::thread::panicking() {
                panic!(
                    "ops serve did not stop cleanly ({status}):\n{}",
                    self.log_text()
                );
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// GET an absolute `http://127.0.0.1:PORT/...` URL: (status, body).
pub fn http_get(url: &str) -> (u16, Vec<u8>) {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').expect("URL path"));
    let mut s = std::net::TcpStream::connect(host).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let head_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let status = head[9..12].parse().unwrap();
    let mut body = raw[head_end..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n").expect("chunk size");
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap().trim(), 16).unwrap();
        b = &b[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

/// Poll `f` until it returns Some, for up to `secs` seconds.
pub fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
