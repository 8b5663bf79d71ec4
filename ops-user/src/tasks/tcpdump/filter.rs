//! From validated options to the kernel's [`CaptureConfig`].

use ops_common::tc::{
    CaptureConfig, CFG_CAPTURE, CFG_DST_ADDR, CFG_DST_PORT, CFG_IPV4, CFG_IPV6, CFG_PROTOCOL,
    CFG_SRC_ADDR, CFG_SRC_PORT, MAX_CAPTURE,
};

use super::options::{CaptureOptions, Family, Prefix, MAX_SNAPLEN};

// Every snaplen the API accepts fits one packet record.
const _: () = assert!(MAX_SNAPLEN <= MAX_CAPTURE);

/// The configuration the `ops-tc` programs are loaded with for `options`.
pub fn capture_config(options: &CaptureOptions) -> CaptureConfig {
    let filter = &options.filter;
    let mut cfg = CaptureConfig {
        flags: CFG_CAPTURE,
        // Validation already bounds it; the kernel relies on the bound.
        snaplen: options.snaplen.min(MAX_CAPTURE),
        ..CaptureConfig::default()
    };
    match filter.family() {
        Some(Family::V4) => cfg.flags |= CFG_IPV4,
        Some(Family::V6) => cfg.flags |= CFG_IPV6,
        None => {}
    }
    if let Some(p) = filter.protocol {
        cfg.flags |= CFG_PROTOCOL;
        cfg.protocol = u32::from(p.number());
    }
    if let Some(prefix) = &filter.source {
        cfg.flags |= CFG_SRC_ADDR;
        (cfg.src_addr, cfg.src_mask) = words(prefix);
    }
    if let Some(prefix) = &filter.dest {
        cfg.flags |= CFG_DST_ADDR;
        (cfg.dst_addr, cfg.dst_mask) = words(prefix);
    }
    if let Some(port) = filter.source_port {
        cfg.flags |= CFG_SRC_PORT;
        cfg.src_port = u32::from(port);
    }
    if let Some(port) = filter.dest_port {
        cfg.flags |= CFG_DST_PORT;
        cfg.dst_port = u32::from(port);
    }
    cfg
}

/// Address and mask as the packet's network-order bytes read as native
/// words, the form the kernel compares without swapping.
fn words(prefix: &Prefix) -> ([u32; 4], [u32; 4]) {
    let pack = |bytes: Vec<u8>| {
        let mut out = [0u32; 4];
        for (word, chunk) in out.iter_mut().zip(bytes.chunks(4)) {
            *word = u32::from_ne_bytes(chunk.try_into().expect("4-byte chunks"));
        }
        out
    };
    let mask = pack(prefix.mask_octets());
    let mut addr = pack(prefix.octets());
    for (a, m) in addr.iter_mut().zip(mask) {
        *a &= m;
    }
    (addr, mask)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tasks::tcpdump::options::TcpdumpRequest;

    fn config(json: &str) -> CaptureConfig {
        match TcpdumpRequest::parse(json).unwrap() {
            TcpdumpRequest::Start(o) => capture_config(&o),
            TcpdumpRequest::Stop => unreachable!(),
        }
    }

    #[test]
    fn no_condition_captures_everything() {
        let c = config(r#"{"Enable":true}"#);
        assert_eq!(c.flags, CFG_CAPTURE);
        assert_eq!(c.snaplen, 65535);
    }

    #[test]
    fn ipv4_words_compare_against_packet_bytes() {
        let c = config(
            r#"{"Enable":true,"Protocol":"udp","SourceCidr":"10.200.7.0/24","DestPort":53,"Snaplen":100}"#,
        );
        assert_eq!(
            c.flags,
            CFG_CAPTURE | CFG_IPV4 | CFG_PROTOCOL | CFG_SRC_ADDR | CFG_DST_PORT
        );
        assert_eq!(c.protocol, 17);
        assert_eq!(c.dst_port, 53);
        assert_eq!(c.snaplen, 100);
        // What the kernel loads for 10.200.7.9 from the packet.
        let packet = u32::from_ne_bytes([10, 200, 7, 9]);
        assert_eq!(packet & c.src_mask[0], c.src_addr[0]);
        let other = u32::from_ne_bytes([10, 200, 8, 9]);
        assert_ne!(other & c.src_mask[0], c.src_addr[0]);
    }

    #[test]
    fn ipv6_prefix_spans_words() {
        let c = config(r#"{"Enable":true,"DestCidr":"fd00:1:2::/40"}"#);
        assert_eq!(c.flags, CFG_CAPTURE | CFG_IPV6 | CFG_DST_ADDR);
        assert_eq!(c.dst_mask[0], u32::MAX);
        assert_eq!(c.dst_mask[1], u32::from_ne_bytes([0xff, 0, 0, 0]));
        assert_eq!(c.dst_mask[2..], [0, 0]);
    }

    #[test]
    fn icmp_alone_implies_its_family() {
        assert_eq!(
            config(r#"{"Enable":true,"Protocol":"icmpv6"}"#).flags,
            CFG_CAPTURE | CFG_IPV6 | CFG_PROTOCOL
        );
        assert_eq!(
            config(r#"{"Enable":true,"Protocol":"tcp"}"#).flags,
            CFG_CAPTURE | CFG_PROTOCOL
        );
    }
}
