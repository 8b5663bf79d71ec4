//! Helpers of the tcpdump tests: a lab of two namespaces with several
//! addresses each, a traffic mix, tcpdump itself as the independent oracle,
//! and readers for the files both write.

use std::{
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use aya::programs::{SchedClassifier, TcAttachType};
use pcap_file::pcapng::{
    blocks::{
        enhanced_packet::EnhancedPacketOption, interface_description::InterfaceDescriptionOption,
    },
    Block, PcapNgReader,
};

use crate::{sh, sh_in, VethPair};

/// UDP ports the mix sends from and to (source i goes to destination i).
pub const UDP_SRC_PORTS: [u16; 3] = [4001, 4002, 4003];
pub const UDP_DST_PORTS: [u16; 3] = [5001, 5002, 5003];
/// TCP ports listening in `b`.
pub const TCP_PORTS: [u16; 2] = [6001, 6002];

/// A veth pair whose `a` side (the "container group" under capture) has
/// three addresses and whose `b` side has two, all with static neighbours.
pub struct Lab {
    pub pair: VethPair,
}

impl Lab {
    pub fn new(tag: &str) -> Self {
        let pair = VethPair::new(tag);
        let lab = Self { pair };
        for ip in [lab.a2(), lab.a3()] {
            sh_in(
                &lab.pair.a.name,
                &["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            );
        }
        sh_in(
            &lab.pair.b.name,
            &[
                "ip",
                "addr",
                "add",
                &format!("{}/24", lab.b2()),
                "dev",
                "eth0",
            ],
        );
        let mac = |ns: &str| {
            sh_in(ns, &["cat", "/sys/class/net/eth0/address"])
                .trim()
                .to_owned()
        };
        let (mac_a, mac_b) = (mac(&lab.pair.a.name), mac(&lab.pair.b.name));
        neigh(&lab.pair.a.name, &lab.b2(), &mac_b);
        for ip in [lab.a2(), lab.a3()] {
            neigh(&lab.pair.b.name, &ip, &mac_a);
        }
        lab
    }

    pub fn a_name(&self) -> &str {
        &self.pair.a.name
    }

    /// Addresses of `a`: .1, .11, .12.
    pub fn a1(&self) -> String {
        self.pair.ip_a()
    }
    pub fn a2(&self) -> String {
        format!("10.200.{}.11", self.pair.subnet)
    }
    pub fn a3(&self) -> String {
        format!("10.200.{}.12", self.pair.subnet)
    }
    /// Addresses of `b`: .2, .22.
    pub fn b1(&self) -> String {
        self.pair.ip_b()
    }
    pub fn b2(&self) -> String {
        format!("10.200.{}.22", self.pair.subnet)
    }
    pub fn subnet(&self) -> String {
        format!("10.200.{}.0/24", self.pair.subnet)
    }

    /// A deterministic mix in both directions: UDP from every address of
    /// `a` on three port pairs to both addresses of `b` (and some back),
    /// two TCP connections, and ICMP echo from two addresses. Returns when
    /// every exchange has completed.
    pub fn traffic_mix(&self) {
        let a = self.pair.a.open();
        let b = self.pair.b.open();
        let sinks: Vec<UdpSocket> = b
            .run(|| {
                Ok(UDP_DST_PORTS
                    .iter()
                    .map(|p| UdpSocket::bind(("0.0.0.0", *p)).expect("bind udp sink"))
                    .collect())
            })
            .unwrap();
        let listeners: Vec<TcpListener> = b
            .run(|| {
                Ok(TCP_PORTS
                    .iter()
                    .map(|p| TcpListener::bind(("0.0.0.0", *p)).expect("bind tcp"))
                    .collect())
            })
            .unwrap();
        // UDP a -> b, and replies b -> a from the second sink.
        let (a_ips, b_ips) = ([self.a1(), self.a2(), self.a3()], [self.b1(), self.b2()]);
        let senders: Vec<UdpSocket> = a
            .run(|| {
                let mut out = Vec::new();
                for ip in &a_ips {
                    for port in UDP_SRC_PORTS {
                        out.push(UdpSocket::bind((ip.as_str(), port)).expect("bind udp src"));
                    }
                }
                Ok(out)
            })
            .unwrap();
        let mut n = 0usize;
        for (i, s) in senders.iter().enumerate() {
            let dport = UDP_DST_PORTS[i % 3];
            for dst in &b_ips {
                n += 1;
                s.send_to(&vec![n as u8; 40 + n * 7], (dst.as_str(), dport))
                    .unwrap();
            }
        }
        for (i, s) in senders.iter().enumerate().step_by(2) {
            sinks[1]
                .send_to(&[i as u8; 77], s.local_addr().unwrap())
                .unwrap();
        }
        // TCP: a connects to each listener, sends, half-closes, reads to EOF.
        for (listener, dst) in listeners.iter().zip(&b_ips) {
            let port = listener.local_addr().unwrap().port();
            let dst = dst.clone();
            let client = std::thread::scope(|scope| {
                let server = scope.spawn(|| {
                    let (mut conn, _) = listener.accept().expect("accept");
                    let mut got = Vec::new();
                    conn.read_to_end(&mut got).unwrap();
                    conn.write_all(&got[..100]).unwrap();
                    got.len()
                });
                let mut conn = a
                    .run(|| Ok(TcpStream::connect((dst.as_str(), port)).expect("connect")))
                    .unwrap();
                conn.write_all(&[0x5a; 3000]).unwrap();
                conn.shutdown(std::net::Shutdown::Write).unwrap();
                let mut back = Vec::new();
                conn.read_to_end(&mut back).unwrap();
                assert_eq!(back.len(), 100);
                server.join().unwrap()
            });
            assert_eq!(client, 3000);
        }
        // ICMP echo from two addresses of a to both of b.
        for src in [self.a1(), self.a3()] {
            for dst in &b_ips {
                icmp_echo(&a, &src, dst, 3);
            }
        }
        // Every datagram must have arrived (nothing is dropped by capture).
        let mut buf = [0u8; 2048];
        let mut received = 0;
        for s in &sinks {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            while s.recv_from(&mut buf).is_ok() {
                received += 1;
            }
        }
        assert_eq!(received, n, "UDP datagrams lost on the link");
        // Let the last replies and ACKs cross before anyone stops.
        std::thread::sleep(Duration::from_millis(100));
    }

    /// `n` UDP datagrams of `size` bytes from a1:4100 to b1:`port`.
    pub fn udp_burst(&self, port: u16, n: usize, size: usize) {
        let dst = self.b1();
        let src = self.a1();
        let s = self
            .pair
            .a
            .open()
            .run(|| Ok(UdpSocket::bind((src.as_str(), 4100)).expect("bind")))
            .unwrap();
        for i in 0..n {
            s.send_to(&vec![i as u8; size], (dst.as_str(), port))
                .unwrap();
        }
    }
}

fn neigh(ns: &str, ip: &str, mac: &str) {
    sh_in(
        ns,
        &[
            "ip",
            "neigh",
            "replace",
            ip,
            "lladdr",
            mac,
            "dev",
            "eth0",
            "nud",
            "permanent",
        ],
    );
}

/// Send `count` ICMP echo requests from `src` to `dst` in `netns` over a raw
/// socket (no ping binary needed); the peer's kernel answers.
fn icmp_echo(netns: &crate::Netns, src: &str, dst: &str, count: u16) {
    let (src, dst): (Ipv4Addr, Ipv4Addr) = (src.parse().unwrap(), dst.parse().unwrap());
    netns
        .run(|| {
            // SAFETY: plain socket(2)/bind(2)/sendto(2) on a fresh fd, closed below.
            unsafe {
                let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP);
                assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
                let addr = |ip: Ipv4Addr| libc::sockaddr_in {
                    sin_family: libc::AF_INET as u16,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(ip.octets()),
                    },
                    sin_zero: [0; 8],
                };
                let len = size_of::<libc::sockaddr_in>() as u32;
                let s = addr(src);
                assert_eq!(libc::bind(fd, (&raw const s).cast(), len), 0);
                let d = addr(dst);
                for seq in 0..count {
                    let mut msg = vec![8u8, 0, 0, 0, 0x12, 0x34];
                    msg.extend_from_slice(&seq.to_be_bytes());
                    msg.extend_from_slice(&[0xa5; 48]);
                    let sum = checksum(&msg);
                    msg[2..4].copy_from_slice(&sum.to_be_bytes());
                    let n = libc::sendto(
                        fd,
                        msg.as_ptr().cast(),
                        msg.len(),
                        0,
                        (&raw const d).cast(),
                        len,
                    );
                    assert_eq!(n, msg.len() as isize);
                }
                libc::close(fd);
            }
            Ok(())
        })
        .unwrap();
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for chunk in data.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// tcpdump capturing in a namespace: the oracle. Stopped by SIGINT on drop
/// or by [`Oracle::finish`].
pub struct Oracle {
    child: Option<Child>,
    pub path: PathBuf,
}

impl Oracle {
    /// Start `tcpdump -i eth0 -w path [-s snaplen] expr` in `ns` and wait
    /// until it listens.
    pub fn start(ns: &str, path: &Path, snaplen: Option<u32>, expr: &str) -> Self {
        let mut args: Vec<String> = ["netns", "exec", ns, "tcpdump", "-i", "eth0", "-n", "-U"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(["--immediate-mode".into(), "-Z".into(), "root".into()]);
        args.extend(["-w".into(), path.display().to_string()]);
        if let Some(s) = snaplen {
            args.extend(["-s".into(), s.to_string()]);
        }
        args.extend(expr.split_whitespace().map(String::from));
        let mut child = Command::new("ip")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn tcpdump");
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        loop {
            match lines.next() {
                Some(Ok(line)) if line.contains("listening on") => break,
                Some(Ok(_)) => continue,
                other => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tcpdump did not start ({expr}): {other:?}");
                }
            }
        }
        // Keep draining stderr so tcpdump never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child: Some(child),
            path: path.to_owned(),
        }
    }

    /// Stop tcpdump with SIGINT (it flushes and closes the file).
    pub fn finish(mut self) -> PathBuf {
        self.stop();
        self.path.clone()
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `ip netns exec` execs tcpdump: the pid is tcpdump's.
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let _ = child.wait();
        }
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One packet of a capture file.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Packet {
    pub data: Vec<u8>,
    pub orig_len: u32,
    /// Nanoseconds since the epoch.
    pub ts_ns: u128,
    /// pcapng direction flag: 1 inbound, 2 outbound, 0 unknown.
    pub direction: u32,
}

/// What a pcapng file says about its interface.
#[derive(Debug, Default)]
pub struct FileInfo {
    pub tsresol: Option<u8>,
    pub description: Option<String>,
    pub name: Option<String>,
}

/// Read a pcap or pcapng file with pcap-file's readers.
pub fn read_capture(path: &Path) -> (Vec<Packet>, FileInfo) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut info = FileInfo::default();
    let mut packets = Vec::new();
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut reader = PcapNgReader::new(&bytes[..]).expect("pcapng header");
        while let Some(block) = reader.next_block() {
            match block.unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
                Block::InterfaceDescription(idb) => {
                    for o in &idb.options {
                        match o {
                            InterfaceDescriptionOption::IfTsResol(r) => info.tsresol = Some(*r),
                            InterfaceDescriptionOption::IfDescription(d) => {
                                info.description = Some(d.to_string())
                            }
                            InterfaceDescriptionOption::IfName(n) => {
                                info.name = Some(n.to_string())
                            }
                            _ => {}
                        }
                    }
                }
                Block::EnhancedPacket(epb) => packets.push(Packet {
                    data: epb.data.to_vec(),
                    orig_len: epb.original_len,
                    ts_ns: epb.timestamp.as_nanos(),
                    direction: epb
                        .options
                        .iter()
                        .find_map(|o| match o {
                            EnhancedPacketOption::Flags(f) => Some(f & 0b11),
                            _ => None,
                        })
                        .unwrap_or(0),
                }),
                _ => {}
            }
        }
    } else {
        packets = read_legacy_pcap(&bytes, path);
    }
    (packets, info)
}

/// Legacy pcap as tcpdump writes it, read by hand: pcap-file's reader
/// refuses a record whose original length exceeds the file's snaplen, which
/// is exactly what `-s` produces.
fn read_legacy_pcap(bytes: &[u8], path: &Path) -> Vec<Packet> {
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let magic = u32_at(bytes, 0);
    let nanos = match magic {
        0xa1b2_c3d4 => false,
        0xa1b2_3c4d => true,
        other => panic!(
            "{}: not a little-endian pcap (magic {other:#x})",
            path.display()
        ),
    };
    let mut packets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let (sec, frac) = (u32_at(bytes, at), u32_at(bytes, at + 4));
        let (incl, orig) = (u32_at(bytes, at + 8) as usize, u32_at(bytes, at + 12));
        let data = bytes[at + 16..at + 16 + incl].to_vec();
        let ts_ns =
            u128::from(sec) * 1_000_000_000 + u128::from(frac) * if nanos { 1 } else { 1000 };
        packets.push(Packet {
            data,
            orig_len: orig,
            ts_ns,
            direction: 0,
        });
        at += 16 + incl;
    }
    assert_eq!(at, bytes.len(), "{}: trailing bytes", path.display());
    packets
}

/// The packets' bytes, sorted: a multiset to compare two captures by.
pub fn contents(packets: &[Packet]) -> Vec<(Vec<u8>, u32)> {
    let mut v: Vec<_> = packets
        .iter()
        .map(|p| (p.data.clone(), p.orig_len))
        .collect();
    v.sort();
    v
}

/// `tcpdump -r` and `tshark -r` both read the file and count `expected`
/// packets.
pub fn assert_tools_read(path: &Path, expected: usize) {
    let p = path.display().to_string();
    let out = sh(&["tcpdump", "-r", &p, "-n", "-q"]);
    assert_eq!(out.lines().count(), expected, "tcpdump -r {p}");
    let out = sh(&["tshark", "-r", &p, "-T", "fields", "-e", "frame.number"]);
    assert_eq!(out.lines().count(), expected, "tshark -r {p}");
}

/// No TC filter, no TCX program and (unless `clsact_expected`) no clsact
/// qdisc left on `eth0` of `ns`.
pub fn assert_nothing_attached(ns: &str, netns: &crate::Netns, clsact_expected: bool) {
    for hook in ["ingress", "egress"] {
        let filters = sh_in(ns, &["tc", "filter", "show", "dev", "eth0", hook]);
        assert!(filters.trim().is_empty(), "{hook} filters left: {filters}");
    }
    let qdiscs = sh_in(ns, &["tc", "qdisc", "show", "dev", "eth0"]);
    assert_eq!(
        qdiscs.contains("clsact"),
        clsact_expected,
        "qdiscs: {qdiscs}"
    );
    if !crate::kernel::has_tcx() {
        // Before 6.6 there is no TCX to leave anything on (the query
        // itself is EINVAL there).
        return;
    }
    let tcx = netns
        .run(|| {
            let mut n = 0;
            for t in [TcAttachType::Ingress, TcAttachType::Egress] {
                let (_, progs) = SchedClassifier::query_tcx("eth0", t).expect("query tcx");
                n += progs.len();
            }
            Ok(n)
        })
        .unwrap();
    assert_eq!(tcx, 0, "TCX programs left on eth0");
}

/// A scratch directory for one test's files, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("opst-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Lab {
    /// Send `frames` as raw Ethernet frames out of `a`'s eth0 (an
    /// AF_PACKET socket: the bytes go out exactly as given).
    pub fn send_raw(&self, frames: &[Vec<u8>]) {
        self.pair
            .a
            .open()
            .run(|| {
                let ifindex = nix::net::if_::if_nametoindex("eth0").unwrap();
                // SAFETY: plain socket(2)/sendto(2) on a fresh fd, closed below.
                unsafe {
                    let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
                    assert!(
                        fd >= 0,
                        "packet socket: {}",
                        std::io::Error::last_os_error()
                    );
                    let mut addr: libc::sockaddr_ll = std::mem::zeroed();
                    addr.sll_family = libc::AF_PACKET as u16;
                    addr.sll_ifindex = ifindex as i32;
                    addr.sll_halen = 6;
                    for frame in frames {
                        let n = libc::sendto(
                            fd,
                            frame.as_ptr().cast(),
                            frame.len(),
                            0,
                            (&raw const addr).cast(),
                            size_of::<libc::sockaddr_ll>() as u32,
                        );
                        assert_eq!(
                            n,
                            frame.len() as isize,
                            "{}",
                            std::io::Error::last_os_error()
                        );
                    }
                    libc::close(fd);
                }
                Ok(())
            })
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }

    /// eth0's MAC address in `a` and in `b`.
    pub fn macs(&self) -> ([u8; 6], [u8; 6]) {
        let mac = |ns: &str| {
            let text = sh_in(ns, &["cat", "/sys/class/net/eth0/address"]);
            let mut out = [0u8; 6];
            for (o, part) in out.iter_mut().zip(text.trim().split(':')) {
                *o = u8::from_str_radix(part, 16).unwrap();
            }
            out
        };
        (mac(&self.pair.a.name), mac(&self.pair.b.name))
    }
}

/// An Ethernet frame carrying IPv4/UDP `src:sport -> dst:dport`, with an
/// 802.1Q tag of `vlan` if given.
pub fn udp_frame(
    macs: ([u8; 6], [u8; 6]),
    vlan: Option<u16>,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ports: (u16, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&macs.1);
    f.extend_from_slice(&macs.0);
    if let Some(id) = vlan {
        f.extend_from_slice(&[0x81, 0x00]);
        f.extend_from_slice(&id.to_be_bytes());
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (20 + 8 + payload.len()) as u16;
    let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0];
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(&ports.0.to_be_bytes());
    f.extend_from_slice(&ports.1.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

impl Lab {
    /// Turn IPv6 on for eth0 on both sides without link-local addresses or
    /// DAD (no autoconfiguration noise), with `a` at fd00:200:N::1 and ::11
    /// and `b` at fd00:200:N::2, and static neighbours. Returns the prefix.
    pub fn add_ipv6(&self) -> String {
        let prefix = format!("fd00:200:{}::", self.pair.subnet);
        let (mac_a, mac_b) = {
            let mac = |ns: &str| {
                sh_in(ns, &["cat", "/sys/class/net/eth0/address"])
                    .trim()
                    .to_owned()
            };
            (mac(&self.pair.a.name), mac(&self.pair.b.name))
        };
        for (ns, addrs, peer, peer_mac) in [
            (&self.pair.a.name, vec!["1", "11"], vec!["2"], &mac_b),
            (&self.pair.b.name, vec!["2"], vec!["1", "11"], &mac_a),
        ] {
            for setting in [
                "addr_gen_mode=1",
                "accept_dad=0",
                "accept_ra=0",
                "router_solicitations=0",
                "disable_ipv6=0",
            ] {
                sh_in(
                    ns,
                    &["sysctl", "-qw", &format!("net.ipv6.conf.eth0.{setting}")],
                );
            }
            for a in addrs {
                sh_in(
                    ns,
                    &[
                        "ip",
                        "-6",
                        "addr",
                        "add",
                        &format!("{prefix}{a}/64"),
                        "dev",
                        "eth0",
                        "nodad",
                    ],
                );
            }
            for p in peer {
                sh_in(
                    ns,
                    &[
                        "ip",
                        "-6",
                        "neigh",
                        "replace",
                        &format!("{prefix}{p}"),
                        "lladdr",
                        peer_mac,
                        "dev",
                        "eth0",
                        "nud",
                        "permanent",
                    ],
                );
            }
        }
        prefix
    }

    /// UDP from a's ::1 and ::11 (ports 4001, 4002) to b's ::2 (5001,
    /// 5002), and one TCP exchange a -> b port 6001, over IPv6.
    pub fn traffic_ipv6(&self, prefix: &str) {
        let (a, b) = (self.pair.a.open(), self.pair.b.open());
        let dst = format!("{prefix}2");
        let sinks: Vec<UdpSocket> = b
            .run(|| {
                Ok([5001u16, 5002]
                    .iter()
                    .map(|p| UdpSocket::bind(("::", *p)).unwrap())
                    .collect())
            })
            .unwrap();
        let listener = b
            .run(|| Ok(TcpListener::bind(("::", 6001)).unwrap()))
            .unwrap();
        let senders: Vec<UdpSocket> = a
            .run(|| {
                Ok([("1", 4001u16), ("11", 4002)]
                    .iter()
                    .map(|(h, p)| UdpSocket::bind((format!("{prefix}{h}").as_str(), *p)).unwrap())
                    .collect())
            })
            .unwrap();
        for (i, s) in senders.iter().enumerate() {
            for port in [5001u16, 5002] {
                s.send_to(
                    &vec![i as u8; 50 + usize::from(port - 5000)],
                    (dst.as_str(), port),
                )
                .unwrap();
            }
        }
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let (mut conn, _) = listener.accept().unwrap();
                let mut got = Vec::new();
                conn.read_to_end(&mut got).unwrap();
            });
            let mut conn = a
                .run(|| Ok(TcpStream::connect((dst.as_str(), 6001)).unwrap()))
                .unwrap();
            conn.write_all(&[1u8; 2000]).unwrap();
        });
        let mut buf = [0u8; 512];
        let mut received = 0;
        for s in &sinks {
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            while s.recv_from(&mut buf).is_ok() {
                received += 1;
            }
        }
        assert_eq!(received, 4);
        std::thread::sleep(Duration::from_millis(100));
    }
}
