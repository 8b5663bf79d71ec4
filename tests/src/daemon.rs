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
