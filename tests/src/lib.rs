//! Helpers for the privileged integration tests: namespaces and veth pairs
//! that clean up after themselves, even when a test panics.
//!
//! Every test namespace is named `opst-<pid>-<tag>`, so a leftover is easy to
//! attribute, and addresses come from 10.200.0.0/16; nothing is routed out.

pub mod capture;
pub mod kernel;

use std::{
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

pub mod daemon;
pub mod sdk;

pub use ops_user::ebpf::netns::Netns;

/// Whether privileged tests can run. Without root they are skipped on a
/// developer's machine, but under `CI=true` a skip would hide a failure, so
/// they fail instead.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some_and(|v| v == "true") {
        panic!("{test}: needs root, and CI=true forbids skipping privileged tests");
    }
    eprintln!("SKIPPED {test}: needs root (run `sudo -E cargo xtask test`)");
    false
}

/// Run a command and fail loudly with its output when it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawning {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command inside the namespace `ns` (by `ip netns` name).
pub fn sh_in(ns: &str, args: &[&str]) -> String {
    let mut full = vec!["ip", "netns", "exec", ns];
    full.extend_from_slice(args);
    sh(&full)
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace created for one test; deleted on drop.
pub struct TestNetns {
    pub name: String,
}

impl TestNetns {
    pub fn new(tag: &str) -> Self {
        let name = format!("opst-{}-{tag}", std::process::id());
        // A stale namespace of the same name can only be ours from a
        // previous run with a recycled pid: remove it.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Self { name };
        sh_in(&ns.name, &["ip", "link", "set", "lo", "up"]);
        // No IPv6 autoconfiguration noise (RS, MLD, DAD): counts stay exact.
        sh_in(
            &ns.name,
            &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"],
        );
        sh_in(
            &ns.name,
            &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"],
        );
        ns
    }

    pub fn open(&self) -> Netns {
        Netns::open(&self.name).expect("open test netns")
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        // Deleting the namespace destroys its interfaces and whatever TC
        // state sits on them.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Two namespaces joined by a veth pair: `eth0` in `a` (10.200.N.1) and
/// `eth0` in `b` (10.200.N.2), with static neighbours so that no ARP packet
/// crosses the link.
pub struct VethPair {
    pub a: TestNetns,
    pub b: TestNetns,
    pub subnet: u32,
}

impl VethPair {
    pub fn new(tag: &str) -> Self {
        let subnet = (std::process::id() + NEXT.fetch_add(1, Ordering::Relaxed)) % 250 + 1;
        let a = TestNetns::new(&format!("{tag}-a"));
        let b = TestNetns::new(&format!("{tag}-b"));
        let pair = Self { a, b, subnet };
        sh(&[
            "ip",
            "link",
            "add",
            "opst-va",
            "netns",
            &pair.a.name,
            "type",
            "veth",
            "peer",
            "name",
            "opst-vb",
            "netns",
            &pair.b.name,
        ]);
        for (ns, from, ip, peer_ip) in [
            (&pair.a.name, "opst-va", pair.ip_a(), pair.ip_b()),
            (&pair.b.name, "opst-vb", pair.ip_b(), pair.ip_a()),
        ] {
            sh_in(ns, &["ip", "link", "set", from, "name", "eth0"]);
            sh_in(
                ns,
                &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            );
            sh_in(ns, &["ip", "link", "set", "eth0", "up"]);
            let _ = peer_ip;
        }
        let mac = |ns: &str| -> String {
            let out = sh_in(ns, &["cat", "/sys/class/net/eth0/address"]);
            out.trim().to_owned()
        };
        let (mac_a, mac_b) = (mac(&pair.a.name), mac(&pair.b.name));
        sh_in(
            &pair.a.name,
            &[
                "ip",
                "neigh",
                "replace",
                &pair.ip_b(),
                "lladdr",
                &mac_b,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
        sh_in(
            &pair.b.name,
            &[
                "ip",
                "neigh",
                "replace",
                &pair.ip_a(),
                "lladdr",
                &mac_a,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
        pair
    }

    pub fn ip_a(&self) -> String {
        format!("10.200.{}.1", self.subnet)
    }

    pub fn ip_b(&self) -> String {
        format!("10.200.{}.2", self.subnet)
    }
}
pub mod coredump;
