//! The tcpdump engine's stop conditions, loss accounting, large packets,
//! the per-group registry and validation, on real namespaces and traffic.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
    time::{Duration, Instant},
};

use ops_tests::{
    capture::{assert_nothing_attached, assert_tools_read, read_capture, Lab, Scratch},
    privileged, sh,
};
use ops_user::{
    ebpf::tc::AttachMode,
    tasks::tcpdump::{
        pcap::{InterfaceInfo, PcapNgSink},
        Capture, CaptureHandle, CaptureOptions, StopReason, Summary, Tcpdump, TcpdumpRequest,
        Tuning,
    },
};

fn options(json: &str) -> CaptureOptions {
    match TcpdumpRequest::parse(json).expect(json) {
        TcpdumpRequest::Start(o) => o,
        TcpdumpRequest::Stop => panic!("{json} does not start"),
    }
}

fn start(lab: &Lab, scratch: &Scratch, json: &str, tuning: Tuning) -> CaptureHandle {
    Capture::start_with(
        "eci-limits",
        lab.pair.a.open(),
        options(json),
        scratch.file("out.pcapng"),
        AttachMode::Auto,
        tuning,
        None,
    )
    .expect(json)
}

/// The kernel's and the file's counts agree with each other.
fn assert_consistent(summary: &Summary) {
    assert_eq!(
        summary.matched,
        summary.captured + summary.lost,
        "{summary:?}"
    );
    assert_eq!(
        summary.captured,
        summary.written + summary.not_written,
        "{summary:?}"
    );
    let (packets, _) = read_capture(&summary.path);
    assert_eq!(packets.len() as u64, summary.written, "{summary:?}");
    assert_eq!(
        std::fs::metadata(&summary.path).unwrap().len(),
        summary.bytes_written
    );
    assert_tools_read(&summary.path, summary.written as usize);
}

#[test]
fn packet_num_stops_at_the_exact_count() {
    if !privileged("packet_num_stops_at_the_exact_count") {
        return;
    }
    let (lab, scratch) = (Lab::new("pnum"), Scratch::new("pnum"));
    let capture = start(
        &lab,
        &scratch,
        r#"{"Enable":true,"Protocol":"udp","PacketNum":10}"#,
        Tuning::default(),
    );
    lab.udp_burst(7000, 50, 100);
    let summary = capture.wait();
    assert_eq!(summary.stop_reason, StopReason::PacketNum);
    assert_eq!(summary.written, 10);
    assert_eq!(summary.matched, 50);
    assert_consistent(&summary);
    assert_nothing_attached(lab.a_name(), &lab.pair.a.open(), false);
}

#[test]
fn file_size_is_never_exceeded() {
    if !privileged("file_size_is_never_exceeded") {
        return;
    }
    let (lab, scratch) = (Lab::new("fsz"), Scratch::new("fsz"));
    let limit = 4000u64;
    let capture = start(
        &lab,
        &scratch,
        &format!(r#"{{"Enable":true,"FileSize":{limit}}}"#),
        Tuning::default(),
    );
    lab.udp_burst(7001, 100, 200);
    let summary = capture.wait();
    assert_eq!(summary.stop_reason, StopReason::FileSize);
    let size = std::fs::metadata(&summary.path).unwrap().len();
    assert!(size <= limit, "{size} > {limit}");
    // Full up to the last packet that fitted: 200 B of UDP is 242 B of frame.
    let next = PcapNgSink::<Vec<u8>>::packet_block_len(242);
    assert!(
        size + next > limit,
        "{size} + {next} would still fit in {limit}"
    );
    assert!(summary.written >= 10, "{summary:?}");
    assert_consistent(&summary);
    assert_nothing_attached(lab.a_name(), &lab.pair.a.open(), false);
}

#[test]
fn duration_is_honoured() {
    if !privileged("duration_is_honoured") {
        return;
    }
    let (lab, scratch) = (Lab::new("dur"), Scratch::new("dur"));
    let started = Instant::now();
    let capture = start(
        &lab,
        &scratch,
        r#"{"Enable":true,"Protocol":"udp","Duration":1}"#,
        Tuning::default(),
    );
    lab.udp_burst(7002, 5, 64);
    let summary = capture.wait();
    let elapsed = started.elapsed();
    assert_eq!(summary.stop_reason, StopReason::Duration);
    assert!(elapsed >= Duration::from_secs(1), "{elapsed:?}");
    // Generous: only says the capture did not run on past its duration.
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert_eq!(summary.written, 5);
    assert_consistent(&summary);
    assert_nothing_attached(lab.a_name(), &lab.pair.a.open(), false);
}

#[test]
fn registry_starts_refuses_and_stops_per_group() {
    if !privileged("registry_starts_refuses_and_stops_per_group") {
        return;
    }
    let (lab, scratch) = (Lab::new("reg"), Scratch::new("reg"));
    let tcpdump = Tcpdump::new(AttachMode::Clsact);
    let (tx, rx) = std::sync::mpsc::channel();
    tcpdump
        .start(
            "eci-reg",
            lab.pair.a.open(),
            options(r#"{"Enable":true,"Protocol":"udp"}"#),
            scratch.file("reg.pcapng"),
            Some(Box::new(move |s: &Summary| tx.send(s.clone()).unwrap())),
        )
        .unwrap();
    // A second start for the same group is refused, and changes nothing.
    let err = tcpdump
        .start(
            "eci-reg",
            lab.pair.a.open(),
            options(r#"{"Enable":true}"#),
            scratch.file("other.pcapng"),
            None,
        )
        .unwrap_err();
    assert_eq!(err.code(), "Ops.ExecuteTaskFail");
    assert!(
        err.message().contains("already running"),
        "{}",
        err.message()
    );
    assert!(!scratch.file("other.pcapng").exists());
    lab.udp_burst(7003, 7, 64);
    let summary = tcpdump.stop("eci-reg").unwrap();
    assert_eq!(summary.stop_reason, StopReason::Disabled);
    assert_eq!(summary.written, 7);
    assert_eq!(rx.recv_timeout(Duration::from_secs(1)).unwrap(), summary);
    assert_consistent(&summary);
    assert_nothing_attached(lab.a_name(), &lab.pair.a.open(), false);
    // Nothing runs any more.
    let err = tcpdump.stop("eci-reg").unwrap_err();
    assert_eq!(err.code(), "Ops.ExecuteTaskFail");
    assert!(
        err.message().contains("no tcpdump task"),
        "{}",
        err.message()
    );
    // Shutdown completes a running capture's file too.
    tcpdump
        .start(
            "eci-reg",
            lab.pair.a.open(),
            options(r#"{"Enable":true,"Protocol":"udp"}"#),
            scratch.file("again.pcapng"),
            None,
        )
        .unwrap();
    lab.udp_burst(7003, 3, 64);
    let all = tcpdump.shutdown();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].1.stop_reason, StopReason::Shutdown);
    assert_eq!(all[0].1.written, 3);
    assert_consistent(&all[0].1);
    assert_nothing_attached(lab.a_name(), &lab.pair.a.open(), false);
}

#[test]
fn interface_gone_stops_with_a_complete_file() {
    if !privileged("interface_gone_stops_with_a_complete_file") {
        return;
    }
    let (lab, scratch) = (Lab::new("ifgone"), Scratch::new("ifgone"));
    let capture = start(
        &lab,
        &scratch,
        r#"{"Enable":true,"Protocol":"udp"}"#,
        Tuning::default(),
    );
    lab.udp_burst(7004, 4, 64);
    // Deleting the peer's namespace destroys the veth pair, eth0 included.
    sh(&["ip", "netns", "del", &lab.pair.b.name]);
    let summary = capture.wait();
    assert_eq!(summary.stop_reason, StopReason::InterfaceGone);
    assert_eq!(summary.written, 4);
    assert_consistent(&summary);
}

#[test]
fn namespace_gone_stops_with_a_complete_file() {
    if !privileged("namespace_gone_stops_with_a_complete_file") {
        return;
    }
    let (lab, scratch) = (Lab::new("nsgone"), Scratch::new("nsgone"));
    let capture = start(
        &lab,
        &scratch,
        r#"{"Enable":true,"Protocol":"udp"}"#,
        Tuning::default(),
    );
    lab.udp_burst(7005, 4, 64);
    sh(&["ip", "netns", "del", &lab.pair.a.name]);
    let summary = capture.wait();
    assert_eq!(summary.stop_reason, StopReason::NamespaceGone);
    assert_eq!(summary.written, 4);
    assert_consistent(&summary);
}

#[test]
fn stalled_reader_loss_is_exact() {
    if !privileged("stalled_reader_loss_is_exact") {
        return;
    }
    let (lab, scratch) = (Lab::new("loss"), Scratch::new("loss"));
    // A 2-page (8 KiB) ring holds a handful of 1 KB packets; the reader is
    // paused, so the rest cannot be delivered.
    let tuning = Tuning {
        buffer_pages: 2,
        paused: true,
        ..Tuning::default()
    };
    let capture = start(&lab, &scratch, r#"{"Enable":true,"DestPort":7006}"#, tuning);
    let sent = 300u64;
    lab.udp_burst(7006, sent as usize, 1000);
    capture.set_paused(false);
    let summary = capture.stop(StopReason::Disabled);
    assert_eq!(summary.matched, sent, "{summary:?}");
    assert!(
        summary.lost > 0,
        "the stalled buffers overflowed: {summary:?}"
    );
    assert!(summary.written > 0, "{summary:?}");
    assert_eq!(summary.lost, sent - summary.written, "{summary:?}");
    assert_eq!(summary.not_written, 0);
    assert_consistent(&summary);
}

#[test]
fn bulk_tcp_gso_packets_are_captured_whole() {
    if !privileged("bulk_tcp_gso_packets_are_captured_whole_or_counted_truncated") {
        return;
    }
    let (lab, scratch) = (Lab::new("gso"), Scratch::new("gso"));
    let tuning = Tuning {
        buffer_pages: 1024,
        ..Tuning::default()
    };
    let capture = start(
        &lab,
        &scratch,
        r#"{"Enable":true,"Protocol":"tcp","DestPort":7007}"#,
        tuning,
    );
    // 32 MiB in large writes: veth carries it as GSO super-packets.
    let listener = lab
        .pair
        .b
        .open()
        .run(|| Ok(TcpListener::bind(("0.0.0.0", 7007)).unwrap()))
        .unwrap();
    let dst = lab.b1();
    std::thread::scope(|s| {
        s.spawn(|| {
            let (mut conn, _) = listener.accept().unwrap();
            let mut sink = vec![0u8; 1 << 20];
            while conn.read(&mut sink).unwrap() > 0 {}
        });
        let mut conn = lab
            .pair
            .a
            .open()
            .run(|| Ok(TcpStream::connect((dst.as_str(), 7007)).unwrap()))
            .unwrap();
        let chunk = vec![0x42u8; 1 << 20];
        for _ in 0..32 {
            conn.write_all(&chunk).unwrap();
        }
    });
    let summary = capture.stop(StopReason::Disabled);
    assert_consistent(&summary);
    let (packets, _) = read_capture(&summary.path);
    let big = packets.iter().filter(|p| p.orig_len > 1514).count();
    assert!(big > 0, "no GSO packet seen: {summary:?}");
    // Snaplen 65535 is above every packet here: each is captured whole,
    // GSO super-packets included.
    for p in &packets {
        assert_eq!(p.data.len() as u32, p.orig_len, "captured whole");
    }
    assert_eq!(summary.truncated, 0, "{summary:?}");
    let largest = packets.iter().map(|p| p.orig_len).max().unwrap_or(0);
    eprintln!(
        "bulk TCP: {} packets ({big} over 1514 B, largest {largest} B), lost {}",
        packets.len(),
        summary.lost
    );
}

#[test]
fn start_errors_have_exact_codes_and_leave_nothing() {
    if !privileged("start_errors_have_exact_codes_and_leave_nothing") {
        return;
    }
    let (lab, scratch) = (Lab::new("verr"), Scratch::new("verr"));
    let attempt = |json: &str| {
        Capture::start(
            "eci-verr",
            lab.pair.a.open(),
            options(json),
            scratch.file("x.pcapng"),
            AttachMode::Clsact,
        )
        .err()
        .expect(json)
    };
    let e = attempt(r#"{"Enable":true,"IfDeviceName":"eth9"}"#);
    assert_eq!(e.code(), "Tcpdump.InvalidValue");
    assert!(
        e.message().contains("IfDeviceName") && e.message().contains("eth9"),
        "{}",
        e.message()
    );
    let min = PcapNgSink::<Vec<u8>>::min_size(&InterfaceInfo {
        name: "eth0".into(),
        description: "container group eci-verr, interface eth0".into(),
        snaplen: 65535,
    });
    let e = attempt(&format!(r#"{{"Enable":true,"FileSize":{}}}"#, min - 1));
    assert_eq!(e.code(), "Tcpdump.InvalidValue");
    assert!(e.message().contains("FileSize"), "{}", e.message());
    assert!(!scratch.file("x.pcapng").exists());
    // Exactly the minimum is accepted (and holds no packet).
    let capture = Capture::start(
        "eci-verr",
        lab.pair.a.open(),
        options(&format!(r#"{{"Enable":true,"FileSize":{min}}}"#)),
        scratch.file("min.pcapng"),
        AttachMode::Clsact,
    )
    .unwrap();
    lab.udp_burst(7008, 1, 64);
    let summary = capture.wait();
    assert_eq!(summary.stop_reason, StopReason::FileSize);
    assert_eq!(summary.bytes_written, min);
    assert_nothing_attached(lab.a_name(), &lab.pair.a.open(), false);
    // OpsValue errors, as the API reports them.
    for (json, code) in [
        ("{", "Ops.OpsValueInvalid"),
        (r#"{"Protocol":"tcp"}"#, "Ops.OpsValueInvalid"),
        (r#"{"Enable":true,"Bogus":1}"#, "Ops.OpsValueInvalid"),
        (r#"{"Enable":true,"SourcePort":0}"#, "Tcpdump.InvalidValue"),
        (
            r#"{"Enable":true,"Protocol":"icmpv4","DestPort":53}"#,
            "Tcpdump.InvalidValue",
        ),
    ] {
        assert_eq!(
            TcpdumpRequest::parse(json).unwrap_err().code(),
            code,
            "{json}"
        );
    }
}

#[test]
fn if_device_name_selects_the_interface() {
    if !privileged("if_device_name_selects_the_interface") {
        return;
    }
    let (lab, scratch) = (Lab::new("lo"), Scratch::new("lo"));
    let capture = start(
        &lab,
        &scratch,
        r#"{"Enable":true,"IfDeviceName":"lo","Protocol":"udp","DestPort":7010}"#,
        Tuning::default(),
    );
    // Traffic on eth0 does not reach lo's capture...
    lab.udp_burst(7010, 3, 64);
    // ...loopback traffic does: each datagram leaves (egress) and comes
    // back in (ingress) on lo.
    let a = lab.pair.a.open();
    a.run(|| {
        let rx = std::net::UdpSocket::bind("127.0.0.1:7010").unwrap();
        let tx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        for i in 0..5u8 {
            tx.send_to(&[i; 20], "127.0.0.1:7010").unwrap();
        }
        let mut buf = [0u8; 64];
        for _ in 0..5 {
            rx.recv_from(&mut buf).unwrap();
        }
        Ok(())
    })
    .unwrap();
    let summary = capture.stop(StopReason::Disabled);
    assert_eq!(summary.written, 10, "{summary:?}");
    let (packets, info) = read_capture(&summary.path);
    assert_eq!(info.name.as_deref(), Some("lo"));
    assert_eq!(packets.iter().filter(|p| p.direction == 1).count(), 5);
    assert_eq!(packets.iter().filter(|p| p.direction == 2).count(), 5);
    assert_consistent(&summary);
}
