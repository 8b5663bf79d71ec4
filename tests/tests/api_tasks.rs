//! The tasks through the API, as users drive them: the official SDK creates
//! tcpdump and coredump tasks on a real daemon, Describe lists the records,
//! the presigned URLs serve the pcap and the core (checked with pcap-file,
//! tcpdump and gdb), records survive restarts, and expiry disarms.

use std::time::Duration;

use ops_tests::{
    capture::{read_capture, Lab, Scratch},
    coredump::{
        build_crasher, core_pattern_lock, run_in, SysctlGuard, TempDir, TestCgroup, CORE_PATTERN,
    },
    daemon::{http_get, wait_for, Daemon},
    privileged,
    sdk::code,
    sh,
};
use serde_json::Value;

fn records(d: &Daemon, group: &str, ops_type: &str) -> Vec<Value> {
    let r = d.sdk().describe(group, Some(ops_type));
    r["ok"]["Records"]
        .as_array()
        .unwrap_or_else(|| panic!("{r}"))
        .clone()
}

fn cli(d: &Daemon, args: &[&str]) -> String {
    let out = d.cli(args);
    assert!(
        out.status.success(),
        "ops {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tcpdump_through_the_sdk() {
    if !privileged("tcpdump_through_the_sdk") {
        return;
    }
    let lab = Lab::new("api-td");
    let mut d = Daemon::start("api-td", &["--min-interval", "2", "--record-ttl", "30"]);
    cli(&d, &["instance", "add", "eci-td", "--netns", lab.a_name()]);
    let sdk = d.sdk();

    // Bad values are refused before anything is attached.
    for (value, expected) in [
        ("not json", "Ops.OpsValueInvalid"),
        (r#"{"Protocol": "udp"}"#, "Ops.OpsValueInvalid"),
        (r#"{"Enable": true, "Bogus": 1}"#, "Ops.OpsValueInvalid"),
        (
            r#"{"Enable": true, "SourcePort": 0}"#,
            "Tcpdump.InvalidValue",
        ),
        (
            r#"{"Enable": true, "Protocol": "icmpv4", "DestPort": 80}"#,
            "Tcpdump.InvalidValue",
        ),
        (
            r#"{"Enable": true, "IfDeviceName": "eth9"}"#,
            "Tcpdump.InvalidValue",
        ),
    ] {
        let r = sdk.create("eci-td", "tcpdump", value);
        assert_eq!(code(&r), expected, "{value}: {r}");
    }
    let r = sdk.create("eci-td", "tcpdump", r#"{"Enable": false}"#);
    assert_eq!(code(&r), "Ops.ExecuteTaskFail", "nothing is running: {r}");

    let r = sdk.create(
        "eci-td",
        "tcpdump",
        r#"{"Enable": true, "Protocol": "udp", "DestPort": 5001, "PacketNum": 20}"#,
    );
    assert_eq!(r["ok"]["Result"], "Enable Success", "{r}");
    let again = sdk.create("eci-td", "tcpdump", r#"{"Enable": true}"#);
    assert_eq!(code(&again), "Ops.IntervalTooShort");
    let listed = records(&d, "eci-td", "tcpdump");
    assert!(
        listed.iter().any(|r| r["OpsStatus"] == "Ready"),
        "{listed:?}"
    );

    lab.udp_burst(5001, 30, 100);
    lab.udp_burst(5002, 5, 100);
    let done = wait_for("the capture record", 20, || {
        records(&d, "eci-td", "tcpdump")
            .into_iter()
            .find(|r| r["OpsStatus"] == "Success")
    });
    assert_eq!(done["ResultType"], "Url");
    let url = done["ResultContent"].as_str().unwrap().to_owned();

    // The presigned URL serves the pcapng; pcap-file and tcpdump read it.
    let (status, body) = http_get(&url);
    assert_eq!(status, 200);
    let scratch = Scratch::new("api-td-files");
    let file = scratch.file("via-url.pcapng");
    std::fs::write(&file, &body).unwrap();
    let (packets, info) = read_capture(&file);
    assert_eq!(packets.len(), 20, "PacketNum");
    assert!(info.description.unwrap_or_default().contains("eci-td"));
    let out = sh(&[
        "tcpdump",
        "-r",
        file.to_str().unwrap(),
        "-n",
        "udp",
        "and",
        "dst",
        "port",
        "5001",
    ]);
    assert_eq!(out.lines().count(), 20);
    // The CLI downloads the same bytes over the socket.
    let list: Value = serde_json::from_str(&cli(
        &d,
        &["--output", "json", "records", "list", "--group", "eci-td"],
    ))
    .unwrap();
    let id = list["Records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["OpsStatus"] == "Success")
        .and_then(|r| r["RecordId"].as_str())
        .unwrap()
        .to_owned();
    let dumped = scratch.file("dump.pcapng");
    cli(
        &d,
        &["records", "dump", &id, "-o", dumped.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&dumped).unwrap(), body);
    let shown: Value =
        serde_json::from_str(&cli(&d, &["--output", "json", "records", "show", &id])).unwrap();
    assert_eq!(shown["Record"]["Detail"]["Written"], 20);
    assert_eq!(
        shown["Record"]["Detail"]["StopReason"],
        "packet count reached"
    );

    // A URL is bound to its record and expiry.
    let tampered = url.replace("Expires=", "Expires=9");
    let (status, body) = http_get(&tampered);
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("SignatureDoesNotMatch"));

    // Stopping a running capture with Enable:false records it too.
    std::thread::sleep(Duration::from_secs(2));
    let r = sdk.create(
        "eci-td",
        "tcpdump",
        r#"{"Enable": true, "Protocol": "udp"}"#,
    );
    assert_eq!(r["ok"]["Result"], "Enable Success", "{r}");
    lab.udp_burst(5003, 7, 64);
    std::thread::sleep(Duration::from_secs(2));
    let r = sdk.create("eci-td", "tcpdump", r#"{"Enable": false}"#);
    assert_eq!(r["ok"]["Result"], "Disable Success", "{r}");
    let all = records(&d, "eci-td", "tcpdump");
    let local = cli(
        &d,
        &["--output", "json", "records", "list", "--group", "eci-td"],
    );
    assert_eq!(all.len(), 2, "{local}");
    assert!(all.iter().all(|r| r["OpsStatus"] == "Success"), "{all:?}");

    // Records survive a restart; the URL still works until it expires.
    d.restart();
    assert_eq!(records(&d, "eci-td", "tcpdump").len(), 2);
    assert_eq!(http_get(&url).0, 200);
}

#[test]
fn download_urls_expire() {
    if !privileged("download_urls_expire") {
        return;
    }
    let lab = Lab::new("api-exp");
    let d = Daemon::start("api-exp", &["--record-ttl", "3"]);
    cli(&d, &["instance", "add", "eci-exp", "--netns", lab.a_name()]);
    let r = d.sdk().create(
        "eci-exp",
        "tcpdump",
        r#"{"Enable": true, "PacketNum": 3, "Protocol": "udp"}"#,
    );
    assert_eq!(r["ok"]["Result"], "Enable Success", "{r}");
    lab.udp_burst(5001, 3, 64);
    let done = wait_for("the capture record", 10, || {
        records(&d, "eci-exp", "tcpdump")
            .into_iter()
            .find(|r| r["OpsStatus"] == "Success")
    });
    let url = done["ResultContent"].as_str().unwrap().to_owned();
    assert_eq!(http_get(&url).0, 200);
    std::thread::sleep(Duration::from_secs(4));
    let (status, body) = http_get(&url);
    assert_eq!(status, 403);
    assert!(String::from_utf8_lossy(&body).contains("InvalidTimeStamp.Expired"));
}

#[test]
fn coredump_through_the_sdk() {
    if !privileged("coredump_through_the_sdk") {
        return;
    }
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let work = TempDir::new("api-cd-work");
    let crasher = build_crasher(&work.0);
    let cgroup = TestCgroup::new("api-cd");
    let other = TestCgroup::new("api-cd2");
    let d = Daemon::start("api-cd", &["--min-interval", "2"]);
    cli(
        &d,
        &[
            "instance",
            "add",
            "eci-cd",
            "--cgroup",
            cgroup.dir.to_str().unwrap(),
        ],
    );
    cli(
        &d,
        &[
            "instance",
            "add",
            "eci-cd2",
            "--cgroup",
            other.dir.to_str().unwrap(),
        ],
    );
    let sdk = d.sdk();

    assert_eq!(
        code(&sdk.create("eci-cd2", "coredump", "maybe")),
        "Ops.OpsValueInvalid"
    );
    assert_eq!(
        code(&sdk.create(
            "eci-cd2",
            "coredump",
            r#"{"Enable": true, "CorePattern": "|/bin/cat"}"#
        )),
        "Coredump.InvalidCorePatternType"
    );
    assert_eq!(
        code(&sdk.create(
            "eci-cd2",
            "coredump",
            r#"{"Enable": true, "CorePattern": "cores/core.%p"}"#
        )),
        "InvalidCorePatternValue"
    );

    let r = sdk.create("eci-cd", "coredump", "enable");
    assert_eq!(
        r["ok"]["Result"], "Coredump settings has been configured successfully.",
        "{r}"
    );
    assert!(
        !guard.unchanged(),
        "core_pattern is ours while a group is enabled"
    );
    assert_eq!(
        code(&sdk.create("eci-cd", "coredump", "enable")),
        "Coredump.RefrshIntervalTooShort"
    );

    let (_, status) = run_in(Some(&cgroup.dir), &work.0, &crasher, &["segv"]);
    assert!(!status.success());
    let crash = wait_for("the crash record", 20, || {
        records(&d, "eci-cd", "coredump")
            .into_iter()
            .find(|r| r["OpsStatus"] == "Success")
    });
    let all = records(&d, "eci-cd", "coredump");
    assert!(
        all.iter().any(|r| r["OpsStatus"] == "Ready"),
        "the arming record: {all:?}"
    );

    // The URL serves the uncompressed core; gdb reads it.
    let (status, core) = http_get(crash["ResultContent"].as_str().unwrap());
    assert_eq!(status, 200);
    assert_eq!(&core[..4], b"\x7fELF");
    let core_file = work.0.join("core.from-url");
    std::fs::write(&core_file, &core).unwrap();
    let bt = sh(&[
        "gdb",
        "-batch",
        "-ex",
        "bt",
        crasher.to_str().unwrap(),
        core_file.to_str().unwrap(),
    ]);
    assert!(bt.contains("crash_segv"), "{bt}");

    // Someone else takes core_pattern: we do not fight, and say so.
    std::fs::write(CORE_PATTERN, "core.opst-foreign").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        code(&sdk.create("eci-cd", "coredump", "disable")),
        "CorePattern.UpdateFail"
    );
    assert_eq!(
        std::fs::read_to_string(CORE_PATTERN).unwrap().trim(),
        "core.opst-foreign"
    );
    guard.restore();
    drop(d);
    assert!(guard.unchanged());
}

#[test]
fn armed_coredump_expires_and_is_disarmed() {
    if !privileged("armed_coredump_expires_and_is_disarmed") {
        return;
    }
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let cgroup = TestCgroup::new("api-cdx");
    let d = Daemon::start("api-cdx", &["--record-ttl", "3"]);
    cli(
        &d,
        &[
            "instance",
            "add",
            "eci-cdx",
            "--cgroup",
            cgroup.dir.to_str().unwrap(),
        ],
    );
    let r = d.sdk().create("eci-cdx", "coredump", "enable");
    assert_eq!(
        r["ok"]["Result"], "Coredump settings has been configured successfully.",
        "{r}"
    );
    assert!(!guard.unchanged());
    let expired = wait_for("the arming record to expire", 15, || {
        records(&d, "eci-cdx", "coredump")
            .into_iter()
            .find(|r| r["OpsStatus"] == "Expired")
    });
    assert!(expired["ResultContent"].is_null());
    // Really disarmed: the machine's core_pattern is back.
    assert!(
        guard.unchanged(),
        "core_pattern restored when the only armed group expired"
    );
}

/// Send UDP bursts to `port` until `child` exits (at most 30 s).
fn feed_until_exit(lab: &Lab, port: u16, child: &mut std::process::Child) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "the capture never filled"
        );
        lab.udp_burst(port, 3, 64);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn cli_tcpdump_follows_and_streams() {
    if !privileged("cli_tcpdump_follows_and_streams") {
        return;
    }
    use std::process::{Command, Stdio};
    let lab = Lab::new("api-cli");
    let d = Daemon::start("api-cli", &["--min-interval", "0"]);
    cli(&d, &["instance", "add", "eci-cli", "--netns", lab.a_name()]);
    let ops = ops_tests::daemon::ops_bin();
    let socket = d.socket.to_str().unwrap().to_owned();

    // Follow: the command returns when the capture ends, with its record.
    let follow = Command::new(&ops)
        .args([
            "--socket",
            &socket,
            "--output",
            "json",
            "tcpdump",
            "eci-cli",
            "--protocol",
            "udp",
            "-c",
            "5",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The CLI attaches when it gets to it: send until the capture is full.
    let mut follow = follow;
    feed_until_exit(&lab, 5001, &mut follow);
    let out = follow.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["OpsStatus"], "Success", "{record}");
    assert_eq!(record["Detail"]["Written"], 5);

    // Stream: `-w -` into `tshark -r -` while the capture runs.
    let mut stream = Command::new(&ops)
        .args([
            "--socket",
            &socket,
            "tcpdump",
            "eci-cli",
            "--protocol",
            "udp",
            "-c",
            "10",
            "-w",
            "-",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let tshark = Command::new("tshark")
        .args(["-r", "-", "-T", "fields", "-e", "udp.dstport"])
        .stdin(stream.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    feed_until_exit(&lab, 5002, &mut stream);
    assert!(stream.wait().unwrap().success());
    let out = tshark.wait_with_output().unwrap();
    let ports: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(ports.len(), 10, "{ports:?}");
    assert!(ports.iter().all(|p| p == "5002"), "{ports:?}");
}

#[test]
fn captures_are_recorded_across_stop_and_kill() {
    if !privileged("captures_are_recorded_across_stop_and_kill") {
        return;
    }
    let lab = Lab::new("api-stop");
    let mut d = Daemon::start("api-stop", &["--min-interval", "0"]);
    cli(
        &d,
        &["instance", "add", "eci-stop", "--netns", lab.a_name()],
    );
    let sdk = d.sdk();

    // SIGTERM: the running capture is finished, its file complete.
    let r = sdk.create(
        "eci-stop",
        "tcpdump",
        r#"{"Enable": true, "Protocol": "udp"}"#,
    );
    assert_eq!(r["ok"]["Result"], "Enable Success", "{r}");
    lab.udp_burst(5001, 6, 64);
    std::thread::sleep(Duration::from_millis(500));
    d.restart();
    let after = records(&d, "eci-stop", "tcpdump");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["OpsStatus"], "Success", "{after:?}");
    let (status, body) = http_get(after[0]["ResultContent"].as_str().unwrap());
    assert_eq!(status, 200);
    let scratch = Scratch::new("api-stop-files");
    let file = scratch.file("stopped.pcapng");
    std::fs::write(&file, body).unwrap();
    assert_eq!(read_capture(&file).0.len(), 6);

    // SIGKILL: nothing can finish the capture; the next start says so.
    let r = sdk.create("eci-stop", "tcpdump", r#"{"Enable": true}"#);
    assert_eq!(r["ok"]["Result"], "Enable Success", "{r}");
    let status = d.stop_with(nix::sys::signal::Signal::SIGKILL);
    assert!(!status.success());
    d.start_again();
    let after = records(&d, "eci-stop", "tcpdump");
    assert_eq!(after.len(), 2);
    assert_eq!(after[1]["OpsStatus"], "Failed", "{after:?}");
    let local = cli(
        &d,
        &["--output", "json", "records", "list", "--group", "eci-stop"],
    );
    assert!(
        local.contains("the daemon stopped while the capture was running"),
        "{local}"
    );
    // A new capture can start: nothing of the killed one is in the way.
    let r = sdk.create("eci-stop", "tcpdump", r#"{"Enable": true, "PacketNum": 1}"#);
    assert_eq!(r["ok"]["Result"], "Enable Success", "{r}");
}

#[test]
fn coredump_is_rearmed_after_a_restart() {
    if !privileged("coredump_is_rearmed_after_a_restart") {
        return;
    }
    let _lock = core_pattern_lock();
    let guard = SysctlGuard::new();
    let cgroup = TestCgroup::new("api-cdr");
    let mut d = Daemon::start("api-cdr", &["--min-interval", "0"]);
    cli(
        &d,
        &[
            "instance",
            "add",
            "eci-cdr",
            "--cgroup",
            cgroup.dir.to_str().unwrap(),
        ],
    );
    let r = d.sdk().create("eci-cdr", "coredump", "enable");
    assert_eq!(
        r["ok"]["Result"], "Coredump settings has been configured successfully.",
        "{r}"
    );
    let ours = std::fs::read_to_string(CORE_PATTERN).unwrap();
    assert!(!guard.unchanged());
    // A clean stop gives core_pattern back; the next start takes it again
    // for the group whose arming record is still Ready.
    d.restart();
    assert_eq!(std::fs::read_to_string(CORE_PATTERN).unwrap(), ours);
    let armed = records(&d, "eci-cdr", "coredump");
    assert_eq!(armed.len(), 1);
    assert_eq!(armed[0]["OpsStatus"], "Ready");
    let r = d.sdk().create("eci-cdr", "coredump", "disable");
    assert_eq!(
        r["ok"]["Result"], "Coredump settings has been configured successfully.",
        "{r}"
    );
    assert!(guard.unchanged(), "the last disable restores core_pattern");
    assert_eq!(records(&d, "eci-cdr", "coredump")[0]["OpsStatus"], "Closed");
}
