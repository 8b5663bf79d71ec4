//! The TC slice end to end: the real `ops-tc` classifiers, loaded and
//! attached by ops-user inside a namespace this test creates, see exactly
//! the packets sent over a veth, in the right direction, and leave nothing
//! behind, with TCX and with the clsact fallback.

use std::{net::UdpSocket, time::Duration};

use ops_common::tc::Direction;
use ops_tests::{kernel, privileged, sh_in, VethPair};
use ops_user::ebpf::{
    self,
    tc::{AttachMode, Attached, TcAttachment},
    EbpfError, TC_OBJECT,
};

/// Distinct counts per direction, so a swapped direction cannot pass.
const OUT: usize = 37;
const BACK: usize = 23;

fn attach(pair: &VethPair, mode: AttachMode) -> TcAttachment {
    let object = ebpf::load("ops-tc", TC_OBJECT, []).expect("load ops-tc");
    TcAttachment::attach(object, pair.a.open(), "eth0", mode).expect("attach")
}

/// Send OUT datagrams a→b and BACK datagrams b→a, and check they arrived:
/// the programs must pass traffic through untouched.
fn exchange(pair: &VethPair) {
    let (ip_a, ip_b) = (pair.ip_a(), pair.ip_b());
    let rx = pair
        .b
        .open()
        .run(|| Ok(UdpSocket::bind((ip_b.as_str(), 9000)).expect("bind b")))
        .unwrap();
    let tx = pair
        .a
        .open()
        .run(|| Ok(UdpSocket::bind((ip_a.as_str(), 0)).expect("bind a")))
        .unwrap();
    for s in [&rx, &tx] {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    }
    let mut buf = [0u8; 64];
    for i in 0..OUT {
        tx.send_to(&[i as u8; 32], (ip_b.as_str(), 9000)).unwrap();
        let (n, _) = rx.recv_from(&mut buf).expect("datagram a→b lost");
        assert_eq!(n, 32);
    }
    let a_addr = tx.local_addr().unwrap();
    for i in 0..BACK {
        rx.send_to(&[i as u8; 16], a_addr).unwrap();
        let (n, _) = tx.recv_from(&mut buf).expect("datagram b→a lost");
        assert_eq!(n, 16);
    }
}

fn assert_nothing_attached(pair: &VethPair, clsact_expected: bool) {
    ops_tests::capture::assert_nothing_attached(&pair.a.name, &pair.a.open(), clsact_expected);
}

fn counts_exactly(mode: AttachMode, expected: Attached, tag: &str) {
    let pair = VethPair::new(tag);
    let attachment = attach(&pair, mode);
    assert_eq!(attachment.attached(), expected);
    exchange(&pair);
    assert_eq!(attachment.seen(Direction::Egress).unwrap(), OUT as u64);
    assert_eq!(attachment.seen(Direction::Ingress).unwrap(), BACK as u64);
    drop(attachment);
    assert_nothing_attached(&pair, false);
}

#[test]
fn tcx_counts_each_direction_exactly() {
    if !privileged("tcx_counts_each_direction_exactly") {
        return;
    }
    if kernel::has_tcx() {
        counts_exactly(AttachMode::Tcx, Attached::Tcx, "tcx");
        return;
    }
    // TCX cannot exist before 6.6: forcing it must fail clearly, at the
    // TCX attach, and leave the interface as it was.
    let pair = VethPair::new("tcx");
    let object = ebpf::load("ops-tc", TC_OBJECT, []).expect("load ops-tc");
    let err = TcAttachment::attach(object, pair.a.open(), "eth0", AttachMode::Tcx)
        .err()
        .expect("TCX attach cannot succeed without TCX");
    assert!(
        matches!(err, EbpfError::Program { action, .. } if action == "attach (TCX)"),
        "{err}"
    );
    let cause = std::error::Error::source(&err).map_or(String::new(), |s| format!(": {s}"));
    kernel::report_path(
        "forced tc attach",
        format!("refused, no TCX ({err}{cause})"),
    );
    assert_nothing_attached(&pair, false);
}

#[test]
fn auto_prefers_tcx_on_this_kernel() {
    if !privileged("auto_prefers_tcx_on_this_kernel") {
        return;
    }
    // TCX exists from 6.6; older kernels take the clsact path.
    let pair = VethPair::new("auto");
    let attachment = attach(&pair, AttachMode::Auto);
    let expected = if kernel::has_tcx() {
        Attached::Tcx
    } else {
        Attached::Clsact
    };
    kernel::report_path("tc attach (auto)", attachment.attached());
    assert_eq!(attachment.attached(), expected);
    exchange(&pair);
    assert_eq!(attachment.seen(Direction::Egress).unwrap(), OUT as u64);
    assert_eq!(attachment.seen(Direction::Ingress).unwrap(), BACK as u64);
    drop(attachment);
    assert_nothing_attached(&pair, false);
}

#[test]
fn clsact_counts_each_direction_exactly_and_removes_its_qdisc() {
    if !privileged("clsact_counts_each_direction_exactly_and_removes_its_qdisc") {
        return;
    }
    counts_exactly(AttachMode::Clsact, Attached::Clsact, "cls");
}

#[test]
fn clsact_keeps_a_qdisc_it_did_not_create() {
    if !privileged("clsact_keeps_a_qdisc_it_did_not_create") {
        return;
    }
    let pair = VethPair::new("keep");
    sh_in(
        &pair.a.name,
        &["tc", "qdisc", "add", "dev", "eth0", "clsact"],
    );
    let attachment = attach(&pair, AttachMode::Clsact);
    exchange(&pair);
    assert_eq!(attachment.seen(Direction::Egress).unwrap(), OUT as u64);
    let filters = sh_in(
        &pair.a.name,
        &["tc", "filter", "show", "dev", "eth0", "egress"],
    );
    assert!(
        filters.contains("ops_tc_egress"),
        "our filter is visible to tc: {filters}"
    );
    drop(attachment);
    assert_nothing_attached(&pair, true);
}

#[test]
fn missing_interface_is_a_clear_error() {
    if !privileged("missing_interface_is_a_clear_error") {
        return;
    }
    let pair = VethPair::new("noif");
    let object = ebpf::load("ops-tc", TC_OBJECT, []).unwrap();
    let err = TcAttachment::attach(object, pair.a.open(), "eth9", AttachMode::Auto)
        .err()
        .expect("eth9 does not exist");
    assert!(matches!(err, EbpfError::NoSuchInterface { .. }), "{err}");
    assert!(err.to_string().contains("eth9"), "{err}");
}

#[test]
fn a_panicking_test_still_detaches() {
    if !privileged("a_panicking_test_still_detaches") {
        return;
    }
    let pair = VethPair::new("panic");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _attachment = attach(&pair, AttachMode::Clsact);
        panic!("test failure while attached");
    }));
    assert!(result.is_err());
    assert_nothing_attached(&pair, false);
}
