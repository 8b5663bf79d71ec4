//! The tcpdump engine's kernel filter against tcpdump itself: for every
//! OpsValue field and for combinations, our capture and `tcpdump -i eth0`
//! with the equivalent pcap-filter expression, running at the same time on
//! the same interface, must hold exactly the same packets (by bytes).
//!
//! All cases of one test run side by side on one interface (one engine
//! capture and one tcpdump per case) over one traffic mix, which also shows
//! that captures attached together never hide packets from each other.

use std::{
    net::Ipv4Addr,
    time::{SystemTime, UNIX_EPOCH},
};

use ops_tests::{
    capture::{
        assert_nothing_attached, assert_tools_read, contents, read_capture, udp_frame, Lab, Oracle,
        Scratch,
    },
    kernel, privileged,
};
use ops_user::{
    ebpf::tc::AttachMode,
    tasks::tcpdump::{Capture, CaptureHandle, StopReason, TcpdumpRequest},
};

struct Case {
    name: &'static str,
    json: String,
    expr: String,
    snaplen: Option<u32>,
}

fn case(name: &'static str, json: String, expr: String) -> Case {
    Case {
        name,
        json,
        expr,
        snaplen: None,
    }
}

fn start(
    lab: &Lab,
    group: &str,
    json: &str,
    out: std::path::PathBuf,
    mode: AttachMode,
) -> CaptureHandle {
    let TcpdumpRequest::Start(options) = TcpdumpRequest::parse(json).expect(json) else {
        panic!("{json} does not start");
    };
    Capture::start(group, lab.pair.a.open(), options, out, mode).expect(json)
}

/// Run `cases` side by side over one traffic mix and compare each with its
/// oracle. Returns the total of packets compared.
fn run_cases(lab: &Lab, scratch: &Scratch, cases: &[Case], mode: AttachMode) -> usize {
    let oracles: Vec<Oracle> = cases
        .iter()
        .map(|c| {
            Oracle::start(
                lab.a_name(),
                &scratch.file(&format!("{}.pcap", c.name)),
                c.snaplen,
                &c.expr,
            )
        })
        .collect();
    let captures: Vec<CaptureHandle> = cases
        .iter()
        .map(|c| {
            start(
                lab,
                &format!("eci-{}", c.name),
                &c.json,
                scratch.file(&format!("{}.pcapng", c.name)),
                mode,
            )
        })
        .collect();
    let before_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    lab.traffic_mix();
    let after_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let summaries: Vec<_> = captures
        .into_iter()
        .map(|c| c.stop(StopReason::Disabled))
        .collect();
    let oracle_files: Vec<_> = oracles.into_iter().map(Oracle::finish).collect();

    let mut total = 0;
    for ((c, summary), oracle) in cases.iter().zip(&summaries).zip(&oracle_files) {
        let (ours, info) = read_capture(&summary.path);
        let (theirs, _) = read_capture(oracle);
        assert!(
            !theirs.is_empty(),
            "{}: the mix has packets for `{}`",
            c.name,
            c.expr
        );
        assert_eq!(
            contents(&ours),
            contents(&theirs),
            "{}: {} vs tcpdump `{}`: {} vs {} packets",
            c.name,
            c.json,
            c.expr,
            ours.len(),
            theirs.len()
        );
        // The summary adds up, and nothing was lost or left unwritten.
        assert_eq!(summary.stop_reason, StopReason::Disabled, "{}", c.name);
        assert_eq!(summary.written, ours.len() as u64, "{}", c.name);
        assert_eq!(
            summary.matched,
            summary.captured + summary.lost,
            "{}",
            c.name
        );
        assert_eq!((summary.lost, summary.not_written), (0, 0), "{}", c.name);
        assert_eq!(summary.captured, summary.written, "{}", c.name);
        assert_eq!(
            summary.bytes_written,
            std::fs::metadata(&summary.path).unwrap().len()
        );
        // Nanosecond wall-clock timestamps within the traffic's window
        // (with a little slack for the clock offset's sampling).
        assert_eq!(info.tsresol, Some(9));
        assert!(info
            .description
            .as_deref()
            .unwrap()
            .contains(&format!("eci-{}", c.name)));
        for p in &ours {
            assert!(
                p.ts_ns + 1_000_000 >= before_ns && p.ts_ns <= after_ns + 1_000_000,
                "{}: timestamp {} outside [{before_ns}, {after_ns}]",
                c.name,
                p.ts_ns
            );
            // a's addresses send (outbound), b's answer (inbound).
            let src = &p.data[26..30];
            let from_a = src[3] != 2 && src[3] != 22;
            assert_eq!(
                p.direction,
                if from_a { 2 } else { 1 },
                "{}: direction of {src:?}",
                c.name
            );
        }
        total += ours.len();
    }
    // One file goes through tcpdump -r and tshark -r as well.
    let first = &summaries[0];
    assert_tools_read(&first.path, first.written as usize);
    total
}

fn filter_cases(lab: &Lab) -> Vec<Case> {
    let (a1, a2, a3, b1, b2, net) = (
        lab.a1(),
        lab.a2(),
        lab.a3(),
        lab.b1(),
        lab.b2(),
        lab.subnet(),
    );
    vec![
        case("all", r#"{"Enable":true}"#.into(), String::new()),
        case(
            "tcp",
            r#"{"Enable":true,"Protocol":"tcp"}"#.into(),
            "tcp".into(),
        ),
        case(
            "udp",
            r#"{"Enable":true,"Protocol":"udp"}"#.into(),
            "udp".into(),
        ),
        case(
            "icmp",
            r#"{"Enable":true,"Protocol":"icmpv4"}"#.into(),
            "icmp".into(),
        ),
        case(
            "srcip",
            format!(r#"{{"Enable":true,"SourceIp":"{a2}"}}"#),
            format!("src host {a2}"),
        ),
        // The CIDR wins over the IP.
        case(
            "srccidr",
            format!(r#"{{"Enable":true,"SourceIp":"{a2}","SourceCidr":"{a3}/32"}}"#),
            format!("src net {a3}/32"),
        ),
        case(
            "dstip",
            format!(r#"{{"Enable":true,"DestIp":"{b2}"}}"#),
            format!("dst host {b2}"),
        ),
        case(
            "dstcidr",
            format!(r#"{{"Enable":true,"DestCidr":"{net}"}}"#),
            format!("dst net {net}"),
        ),
        case(
            "sport",
            r#"{"Enable":true,"SourcePort":4002}"#.into(),
            "src port 4002".into(),
        ),
        case(
            "dport",
            r#"{"Enable":true,"DestPort":"5003"}"#.into(),
            "dst port 5003".into(),
        ),
        case(
            "tcpdport",
            r#"{"Enable":true,"Protocol":"tcp","DestPort":6002}"#.into(),
            "tcp and dst port 6002".into(),
        ),
        case(
            "tcpsport",
            r#"{"Enable":true,"Protocol":"TCP","SourcePort":6001}"#.into(),
            "tcp and src port 6001".into(),
        ),
        case(
            "udpcombo",
            format!(
                r#"{{"Enable":true,"Protocol":"udp","SourceIp":"{a1}","DestIp":"{b2}","SourcePort":4003,"DestPort":5003}}"#
            ),
            format!("udp and src host {a1} and dst host {b2} and src port 4003 and dst port 5003"),
        ),
        case(
            "icmpcidr",
            format!(
                r#"{{"Enable":true,"Protocol":"icmpv4","SourceCidr":"{b1}/31","DestIp":"{a3}"}}"#
            ),
            format!("icmp and src net {b1}/31 and dst host {a3}"),
        ),
        case(
            "nomatch",
            r#"{"Enable":true,"Protocol":"tcp","DestPort":5001}"#.into(),
            "tcp and dst port 5001".into(),
        ),
    ]
}

#[test]
fn every_filter_field_matches_tcpdump() {
    if !privileged("every_filter_field_matches_tcpdump") {
        return;
    }
    let lab = Lab::new("flt");
    let scratch = Scratch::new("flt");
    let cases: Vec<Case> = filter_cases(&lab)
        .into_iter()
        .filter(|c| c.name != "nomatch")
        .collect();
    // TCX where the kernel has it (6.6+); older kernels run the same
    // cases through the clsact fallback, and say so.
    let mode = if kernel::has_tcx() {
        AttachMode::Tcx
    } else {
        AttachMode::Clsact
    };
    kernel::report_path("tcpdump filter cases attach", format!("{mode:?}"));
    let total = run_cases(&lab, &scratch, &cases, mode);
    eprintln!("{} cases, {total} packets compared", cases.len());
    assert_nothing_attached(lab.a_name(), &lab.pair.a.open(), false);
}

#[test]
fn clsact_path_matches_tcpdump_and_removes_its_qdisc() {
    if !privileged("clsact_path_matches_tcpdump_and_removes_its_qdisc") {
        return;
    }
    let lab = Lab::new("fcls");
    let scratch = Scratch::new("fcls");
    let cases: Vec<Case> = filter_cases(&lab)
        .into_iter()
        .filter(|c| ["all", "udpcombo", "tcpdport", "icmpcidr", "dstcidr"].contains(&c.name))
        .collect();
    run_cases(&lab, &scratch, &cases, AttachMode::Clsact);
    assert_nothing_attached(lab.a_name(), &lab.pair.a.open(), false);
}

#[test]
fn a_filter_nothing_matches_captures_nothing() {
    if !privileged("a_filter_nothing_matches_captures_nothing") {
        return;
    }
    let lab = Lab::new("none");
    let scratch = Scratch::new("none");
    let c = filter_cases(&lab)
        .into_iter()
        .find(|c| c.name == "nomatch")
        .unwrap();
    let capture = start(
        &lab,
        "eci-none",
        &c.json,
        scratch.file("none.pcapng"),
        AttachMode::Auto,
    );
    lab.traffic_mix();
    let summary = capture.stop(StopReason::Disabled);
    assert!(summary.seen > 50, "{summary:?}");
    assert_eq!((summary.matched, summary.written), (0, 0), "{summary:?}");
    assert_tools_read(&summary.path, 0);
}

#[test]
fn snaplen_truncates_and_keeps_the_original_length() {
    if !privileged("snaplen_truncates_and_keeps_the_original_length") {
        return;
    }
    let lab = Lab::new("snap");
    let scratch = Scratch::new("snap");
    let cases = [Case {
        name: "snap96",
        json: r#"{"Enable":true,"Snaplen":96}"#.into(),
        expr: String::new(),
        snaplen: Some(96),
    }];
    run_cases(&lab, &scratch, &cases, AttachMode::Auto);
    let (packets, _) = read_capture(&scratch.file("snap96.pcapng"));
    let long = packets.iter().filter(|p| p.orig_len > 96).count();
    assert!(long > 10, "the mix has packets longer than the snaplen");
    for p in &packets {
        assert_eq!(p.data.len() as u32, p.orig_len.min(96));
    }
}

#[test]
fn two_groups_capture_at_once_without_mixing() {
    if !privileged("two_groups_capture_at_once_without_mixing") {
        return;
    }
    let (lab1, lab2) = (Lab::new("grp1"), Lab::new("grp2"));
    let scratch = Scratch::new("grp");
    let json = r#"{"Enable":true,"Protocol":"udp"}"#;
    let o1 = Oracle::start(lab1.a_name(), &scratch.file("o1.pcap"), None, "udp");
    let o2 = Oracle::start(lab2.a_name(), &scratch.file("o2.pcap"), None, "udp");
    let c1 = start(
        &lab1,
        "eci-grp1",
        json,
        scratch.file("g1.pcapng"),
        AttachMode::Auto,
    );
    let c2 = start(
        &lab2,
        "eci-grp2",
        json,
        scratch.file("g2.pcapng"),
        AttachMode::Auto,
    );
    std::thread::scope(|s| {
        s.spawn(|| lab1.traffic_mix());
        s.spawn(|| lab2.traffic_mix());
    });
    let (s1, s2) = (c1.stop(StopReason::Disabled), c2.stop(StopReason::Disabled));
    let (o1, o2) = (o1.finish(), o2.finish());
    for (summary, oracle, lab, other) in [(&s1, &o1, &lab1, &lab2), (&s2, &o2, &lab2, &lab1)] {
        let (ours, _) = read_capture(&summary.path);
        let (theirs, _) = read_capture(oracle);
        assert_eq!(contents(&ours), contents(&theirs));
        assert!(!ours.is_empty());
        let own = lab.pair.subnet as u8;
        let foreign = other.pair.subnet as u8;
        for p in &ours {
            assert_eq!(p.data[28], own, "a packet of another group");
            assert_ne!(p.data[28], foreign);
        }
    }
}

/// 802.1Q tags in the packet bytes: the filter looks through one tag, and
/// the file holds the tagged frame as tcpdump shows it.
#[test]
fn vlan_tagged_frames_are_filtered_through_their_tag() {
    if !privileged("vlan_tagged_frames_are_filtered_through_their_tag") {
        return;
    }
    let lab = Lab::new("vlan");
    let scratch = Scratch::new("vlan");
    let n = lab.pair.subnet as u8;
    let (src, dst) = (Ipv4Addr::new(10, 201, n, 1), Ipv4Addr::new(10, 201, n, 2));
    let other = Ipv4Addr::new(10, 201, n, 3);
    let macs = lab.macs();
    let mut frames = Vec::new();
    for i in 0..12u16 {
        let (vlan, to, dport) = match i % 4 {
            0 => (Some(100), dst, 4300), // matches
            1 => (None, dst, 4300),      // matches, untagged
            2 => (Some(100), other, 4300),
            _ => (Some(200), dst, 4301),
        };
        frames.push(udp_frame(
            macs,
            vlan,
            src,
            to,
            (4200, dport),
            &vec![i as u8; 30 + usize::from(i)],
        ));
    }
    let oracle = Oracle::start(lab.a_name(), &scratch.file("vlan.pcap"), None, "");
    let capture = start(
        &lab,
        "eci-vlan",
        &format!(r#"{{"Enable":true,"Protocol":"udp","DestIp":"{dst}","DestPort":4300}}"#),
        scratch.file("vlan.pcapng"),
        AttachMode::Auto,
    );
    lab.send_raw(&frames);
    let summary = capture.stop(StopReason::Disabled);
    let oracle = oracle.finish();
    let (ours, _) = read_capture(&summary.path);
    let (theirs, _) = read_capture(&oracle);
    assert_eq!(theirs.len(), frames.len(), "tcpdump saw every frame sent");
    let expected: Vec<_> = frames
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 < 2)
        .map(|(_, f)| (f.clone(), f.len() as u32))
        .collect();
    let mut expected = expected;
    expected.sort();
    assert_eq!(contents(&ours), expected);
    // And those frames are byte for byte what tcpdump recorded.
    for p in &ours {
        assert!(theirs.iter().any(|t| t.data == p.data));
    }
}

/// IPv6 addresses and prefixes (an extension of the documented API), with
/// ports and protocols, against tcpdump.
#[test]
fn ipv6_filters_match_tcpdump() {
    if !privileged("ipv6_filters_match_tcpdump") {
        return;
    }
    let lab = Lab::new("ip6");
    let scratch = Scratch::new("ip6");
    let p = lab.add_ipv6();
    let cases = [
        case(
            "v6udp",
            format!(r#"{{"Enable":true,"Protocol":"udp","DestIp":"{p}2"}}"#),
            format!("udp and dst host {p}2"),
        ),
        case(
            "v6src",
            format!(r#"{{"Enable":true,"SourceCidr":"{p}10/124"}}"#),
            format!("src net {p}10/124"),
        ),
        case(
            "v6port",
            format!(r#"{{"Enable":true,"DestCidr":"{p}/64","DestPort":5002}}"#),
            format!("dst net {p}/64 and dst port 5002"),
        ),
        case(
            "v6tcp",
            r#"{"Enable":true,"Protocol":"tcp","SourcePort":6001}"#.into(),
            "tcp and src port 6001".into(),
        ),
    ];
    let oracles: Vec<Oracle> = cases
        .iter()
        .map(|c| {
            Oracle::start(
                lab.a_name(),
                &scratch.file(&format!("{}.pcap", c.name)),
                None,
                &c.expr,
            )
        })
        .collect();
    let captures: Vec<CaptureHandle> = cases
        .iter()
        .map(|c| {
            start(
                &lab,
                "eci-ip6",
                &c.json,
                scratch.file(&format!("{}.pcapng", c.name)),
                AttachMode::Auto,
            )
        })
        .collect();
    lab.traffic_ipv6(&p);
    let summaries: Vec<_> = captures
        .into_iter()
        .map(|c| c.stop(StopReason::Disabled))
        .collect();
    for ((c, summary), oracle) in cases.iter().zip(&summaries).zip(oracles) {
        let (ours, _) = read_capture(&summary.path);
        let (theirs, _) = read_capture(&oracle.finish());
        assert!(!theirs.is_empty(), "{}: traffic for `{}`", c.name, c.expr);
        assert_eq!(
            contents(&ours),
            contents(&theirs),
            "{}: {} vs `{}`",
            c.name,
            c.json,
            c.expr
        );
    }
}
