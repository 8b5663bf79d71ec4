//! The tcpdump `OpsValue`: a JSON object, parsed and validated before
//! anything is attached.
//!
//! - Malformed JSON, an unknown field, or a missing or non-boolean `Enable`
//!   is `Ops.OpsValueInvalid`.
//! - A field with a bad value is `Tcpdump.InvalidValue`, with a message that
//!   names the field and says why.
//!
//! Numbers are accepted as JSON integers or as strings of digits (SDKs
//! stringify freely); an empty string or `null` means the field is absent.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
    time::Duration,
};

use serde::Deserialize;
use serde_json::Value;

use crate::api::error::ApiError;

/// Largest `FileSize`: 1 GiB.
pub const MAX_FILE_SIZE: u64 = 1 << 30;
/// Largest `Snaplen`, as tcpdump's `MAXIMUM_SNAPLEN`.
pub const MAX_SNAPLEN: u32 = 262_144;
/// `Snaplen` when none is given.
pub const DEFAULT_SNAPLEN: u32 = 65_535;
/// `IfDeviceName` when none is given.
pub const DEFAULT_INTERFACE: &str = "eth0";

/// The OpsValue as sent: every field optional but `Enable`, values still
/// unchecked.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct Raw {
    enable: Value,
    protocol: Option<Value>,
    source_ip: Option<Value>,
    source_cidr: Option<Value>,
    source_port: Option<Value>,
    dest_ip: Option<Value>,
    dest_cidr: Option<Value>,
    dest_port: Option<Value>,
    if_device_name: Option<Value>,
    snaplen: Option<Value>,
    duration: Option<Value>,
    packet_num: Option<Value>,
    file_size: Option<Value>,
}

/// A transport or ICMP protocol the filter can require.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Icmpv4,
    /// An extension of the documented set.
    Icmpv6,
}

impl Protocol {
    /// The IP protocol number (`iphdr.protocol`, `ipv6hdr.nexthdr`).
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
            Self::Icmpv4 => 1,
            Self::Icmpv6 => 58,
        }
    }

    /// Whether the protocol has ports.
    pub const fn has_ports(self) -> bool {
        matches!(self, Self::Tcp | Self::Udp)
    }

    /// The one IP family the protocol lives in, if it is tied to one.
    pub const fn family(self) -> Option<Family> {
        match self {
            Self::Icmpv4 => Some(Family::V4),
            Self::Icmpv6 => Some(Family::V6),
            Self::Tcp | Self::Udp => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Icmpv4 => "icmpv4",
            Self::Icmpv6 => "icmpv6",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// An address prefix: `addr/len` with the host bits cleared. A single
/// address is a prefix of full length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    pub fn family(&self) -> Family {
        match self.addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// The network mask as bytes in network order (4 or 16 of them).
    pub fn mask_octets(&self) -> Vec<u8> {
        let bits = match self.addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let mask = if self.len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(self.len))
        };
        mask.to_be_bytes()[..bits / 8].to_vec()
    }

    /// The address bytes in network order.
    pub fn octets(&self) -> Vec<u8> {
        match self.addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    fn host(addr: IpAddr) -> Self {
        let len = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Self { addr, len }
    }

    fn parse_cidr(s: &str) -> Result<Self, String> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not a CIDR (address/prefix length)"))?;
        let addr = IpAddr::from_str(addr)
            .map_err(|_| format!("`{addr}` in `{s}` is not an IPv4 or IPv6 address"))?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("prefix length `{len}` in `{s}` is not in 0-{max}"))?;
        // Host bits are cleared: 10.1.2.3/8 means 10.0.0.0/8.
        let masked = match addr {
            IpAddr::V4(a) => {
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Ok(Self { addr: masked, len })
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

/// The packet conditions; all given ones must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub protocol: Option<Protocol>,
    pub source: Option<Prefix>,
    pub dest: Option<Prefix>,
    pub source_port: Option<u16>,
    pub dest_port: Option<u16>,
}

impl Filter {
    /// The IP family every matching packet has, if the filter implies one.
    pub fn family(&self) -> Option<Family> {
        self.source
            .map(|p| p.family())
            .or(self.dest.map(|p| p.family()))
            .or(self.protocol.and_then(Protocol::family))
    }
}

/// A validated request to start a capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureOptions {
    pub filter: Filter,
    pub interface: String,
    /// Bytes kept per packet.
    pub snaplen: u32,
    pub duration: Option<Duration>,
    pub packet_num: Option<u64>,
    /// Largest file, in bytes; the file never exceeds it.
    pub file_size: Option<u64>,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
            interface: DEFAULT_INTERFACE.to_owned(),
            snaplen: DEFAULT_SNAPLEN,
            duration: None,
            packet_num: None,
            file_size: None,
        }
    }
}

/// What an OpsValue asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpdumpRequest {
    /// `Enable: true`: start a capture.
    Start(CaptureOptions),
    /// `Enable: false`: stop the running capture; other fields are ignored.
    Stop,
}

impl TcpdumpRequest {
    /// Parse and validate an OpsValue.
    pub fn parse(ops_value: &str) -> Result<Self, ApiError> {
        let raw: Raw = serde_json::from_str(ops_value)
            .map_err(|e| ApiError::OpsValueInvalid(format!("tcpdump OpsValue: {e}")))?;
        let enable = match &raw.enable {
            Value::Bool(b) => *b,
            other => {
                return Err(ApiError::OpsValueInvalid(format!(
                    "Enable must be true or false, not {other}"
                )))
            }
        };
        if !enable {
            return Ok(Self::Stop);
        }
        validate(raw).map(Self::Start)
    }
}

fn validate(raw: Raw) -> Result<CaptureOptions, ApiError> {
    let protocol = text("Protocol", raw.protocol)?
        .map(|p| match p.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "icmpv4" | "icmp" => Ok(Protocol::Icmpv4),
            "icmpv6" => Ok(Protocol::Icmpv6),
            _ => Err(ApiError::tcpdump_field(
                "Protocol",
                format!("`{p}` is not one of tcp, udp, icmpv4, icmpv6"),
            )),
        })
        .transpose()?;
    let source = address("SourceIp", raw.source_ip, "SourceCidr", raw.source_cidr)?;
    let dest = address("DestIp", raw.dest_ip, "DestCidr", raw.dest_cidr)?;
    let source_port = port("SourcePort", raw.source_port, protocol)?;
    let dest_port = port("DestPort", raw.dest_port, protocol)?;

    // Every condition must be satisfiable by one packet: one IP family.
    if let (Some((sf, s)), Some((df, d))) = (source, dest) {
        if s.family() != d.family() {
            return Err(ApiError::tcpdump_field(
                df,
                format!(
                    "{d} is {} but {sf} {s} is {}; a packet has one family",
                    d.family(),
                    s.family()
                ),
            ));
        }
    }
    if let Some(p) = protocol {
        for (field, prefix) in [source, dest].into_iter().flatten() {
            if let Some(family) = p.family() {
                if prefix.family() != family {
                    return Err(ApiError::tcpdump_field(
                        field,
                        format!(
                            "{prefix} is {} but Protocol {p} is {family}",
                            prefix.family()
                        ),
                    ));
                }
            }
        }
    }

    let interface = match text("IfDeviceName", raw.if_device_name)? {
        None => DEFAULT_INTERFACE.to_owned(),
        Some(name) => {
            // IFNAMSIZ is 16 with the NUL; '/' and whitespace are refused by
            // the kernel (dev_valid_name).
            if name.len() > 15
                || name == "."
                || name == ".."
                || name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
            {
                return Err(ApiError::tcpdump_field(
                    "IfDeviceName",
                    format!("`{name}` is not a valid interface name"),
                ));
            }
            name
        }
    };
    let snaplen = match number("Snaplen", raw.snaplen)? {
        None => DEFAULT_SNAPLEN,
        Some(n) if (1..=u64::from(MAX_SNAPLEN)).contains(&n) => n as u32,
        Some(n) => {
            return Err(ApiError::tcpdump_field(
                "Snaplen",
                format!("{n} is not in 1-{MAX_SNAPLEN}"),
            ))
        }
    };
    let duration = positive("Duration", raw.duration)?.map(Duration::from_secs);
    let packet_num = positive("PacketNum", raw.packet_num)?;
    let file_size = positive("FileSize", raw.file_size)?;
    if let Some(size) = file_size {
        if size > MAX_FILE_SIZE {
            return Err(ApiError::tcpdump_field(
                "FileSize",
                format!("{size} is above the maximum of {MAX_FILE_SIZE} bytes"),
            ));
        }
    }
    Ok(CaptureOptions {
        filter: Filter {
            protocol,
            source: source.map(|(_, p)| p),
            dest: dest.map(|(_, p)| p),
            source_port,
            dest_port,
        },
        interface,
        snaplen,
        duration,
        packet_num,
        file_size,
    })
}

/// A string field; `null` and `""` are absent.
fn text(field: &str, value: Option<Value>) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
        Some(other) => Err(ApiError::tcpdump_field(
            field,
            format!("{other} is not a string"),
        )),
    }
}

/// A non-negative integer field, as a JSON number or a string of digits.
fn number(field: &str, value: Option<Value>) -> Result<Option<u64>, ApiError> {
    let bad =
        |v: &dyn fmt::Display| ApiError::tcpdump_field(field, format!("{v} is not an integer"));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => {
            let t = s.trim();
            if let Ok(n) = t.parse::<u64>() {
                Ok(Some(n))
            } else if t.parse::<i64>().is_ok() {
                Err(ApiError::tcpdump_field(field, format!("{t} is negative")))
            } else {
                Err(bad(&format!("`{s}`")))
            }
        }
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Ok(Some(u)),
            (None, Some(i)) => Err(ApiError::tcpdump_field(field, format!("{i} is negative"))),
            _ => Err(bad(&n)),
        },
        Some(other) => Err(bad(&other)),
    }
}

/// A count that must be at least 1.
fn positive(field: &str, value: Option<Value>) -> Result<Option<u64>, ApiError> {
    match number(field, value)? {
        Some(0) => Err(ApiError::tcpdump_field(field, "0 is not positive")),
        other => Ok(other),
    }
}

fn port(
    field: &str,
    value: Option<Value>,
    protocol: Option<Protocol>,
) -> Result<Option<u16>, ApiError> {
    let Some(n) = number(field, value)? else {
        return Ok(None);
    };
    if !(1..=65535).contains(&n) {
        return Err(ApiError::tcpdump_field(
            field,
            format!("{n} is not in 1-65535"),
        ));
    }
    if let Some(p) = protocol.filter(|p| !p.has_ports()) {
        return Err(ApiError::tcpdump_field(
            field,
            format!("ports apply to tcp and udp only, and Protocol is {p}"),
        ));
    }
    Ok(Some(n as u16))
}

/// An address condition from an IP and a CIDR field; the CIDR wins when both
/// are given, but both must be valid. Returns the field it came from.
fn address(
    ip_field: &'static str,
    ip: Option<Value>,
    cidr_field: &'static str,
    cidr: Option<Value>,
) -> Result<Option<(&'static str, Prefix)>, ApiError> {
    let ip = text(ip_field, ip)?
        .map(|s| {
            IpAddr::from_str(&s).map(Prefix::host).map_err(|_| {
                ApiError::tcpdump_field(ip_field, format!("`{s}` is not an IPv4 or IPv6 address"))
            })
        })
        .transpose()?;
    let cidr = text(cidr_field, cidr)?
        .map(|s| Prefix::parse_cidr(&s).map_err(|why| ApiError::tcpdump_field(cidr_field, why)))
        .transpose()?;
    Ok(cidr.map(|p| (cidr_field, p)).or(ip.map(|p| (ip_field, p))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(json: &str) -> CaptureOptions {
        match TcpdumpRequest::parse(json) {
            Ok(TcpdumpRequest::Start(o)) => o,
            other => panic!("{json}: {other:?}"),
        }
    }

    fn err(json: &str) -> ApiError {
        TcpdumpRequest::parse(json).expect_err(json)
    }

    #[test]
    fn minimal_start_gets_the_defaults() {
        assert_eq!(start(r#"{"Enable": true}"#), CaptureOptions::default());
        assert_eq!(
            TcpdumpRequest::parse(r#"{"Enable": false, "Snaplen": 0}"#).unwrap(),
            TcpdumpRequest::Stop
        );
    }

    #[test]
    fn every_field_parses() {
        let o = start(
            r#"{"Enable":true,"Protocol":"TCP","SourceIp":"10.0.0.1","SourceCidr":"10.1.2.3/16",
               "SourcePort":"80","DestIp":"10.9.9.9","DestPort":443,"IfDeviceName":"eth1",
               "Snaplen":128,"Duration":"5","PacketNum":10,"FileSize":4096}"#,
        );
        assert_eq!(o.filter.protocol, Some(Protocol::Tcp));
        // The CIDR wins over the IP, host bits cleared.
        assert_eq!(o.filter.source.unwrap().to_string(), "10.1.0.0/16");
        assert_eq!(o.filter.dest.unwrap().to_string(), "10.9.9.9/32");
        assert_eq!(
            (o.filter.source_port, o.filter.dest_port),
            (Some(80), Some(443))
        );
        assert_eq!(o.interface, "eth1");
        assert_eq!(o.snaplen, 128);
        assert_eq!(o.duration, Some(Duration::from_secs(5)));
        assert_eq!((o.packet_num, o.file_size), (Some(10), Some(4096)));
    }

    #[test]
    fn ipv6_is_an_extension() {
        let o = start(r#"{"Enable":true,"Protocol":"icmpv6","DestCidr":"fd00::1/64"}"#);
        assert_eq!(o.filter.dest.unwrap().to_string(), "fd00::/64");
        assert_eq!(o.filter.family(), Some(Family::V6));
        let p = o.filter.dest.unwrap();
        assert_eq!(p.mask_octets(), [[0xffu8; 8], [0; 8]].concat());
    }

    #[test]
    fn malformed_unknown_or_missing_enable_is_ops_value_invalid() {
        for json in [
            "",
            "not json",
            "[]",
            r#"{"Enable": true"#,
            r#"{"Protocol": "tcp"}"#,
            r#"{"Enable": true, "Port": 80}"#,
            r#"{"enable": true}"#,
            r#"{"Enable": "yes"}"#,
        ] {
            assert_eq!(err(json).code(), "Ops.OpsValueInvalid", "{json}");
        }
        assert!(err(r#"{"Enable": true, "Port": 80}"#)
            .message()
            .contains("Port"));
    }

    #[test]
    fn bad_values_name_their_field() {
        let cases = [
            (r#"{"Enable":true,"SourcePort":0}"#, "SourcePort"),
            (r#"{"Enable":true,"DestPort":65536}"#, "DestPort"),
            (r#"{"Enable":true,"DestPort":-1}"#, "DestPort"),
            (r#"{"Enable":true,"DestPort":"http"}"#, "DestPort"),
            (r#"{"Enable":true,"SourceIp":"10.0.0.256"}"#, "SourceIp"),
            (
                r#"{"Enable":true,"SourceCidr":"10.0.0.0/33"}"#,
                "SourceCidr",
            ),
            (r#"{"Enable":true,"DestCidr":"10.0.0.0"}"#, "DestCidr"),
            (r#"{"Enable":true,"Protocol":"sctp"}"#, "Protocol"),
            (r#"{"Enable":true,"Snaplen":0}"#, "Snaplen"),
            (r#"{"Enable":true,"Snaplen":262145}"#, "Snaplen"),
            (r#"{"Enable":true,"Duration":0}"#, "Duration"),
            (r#"{"Enable":true,"Duration":-5}"#, "Duration"),
            (r#"{"Enable":true,"Duration":1.5}"#, "Duration"),
            (r#"{"Enable":true,"PacketNum":0}"#, "PacketNum"),
            (r#"{"Enable":true,"FileSize":0}"#, "FileSize"),
            (r#"{"Enable":true,"FileSize":1073741825}"#, "FileSize"),
            (
                r#"{"Enable":true,"Protocol":"icmpv4","DestPort":80}"#,
                "DestPort",
            ),
            (
                r#"{"Enable":true,"SourceIp":"10.0.0.1","DestCidr":"fd00::/8"}"#,
                "DestCidr",
            ),
            (
                r#"{"Enable":true,"Protocol":"icmpv4","DestIp":"fd00::1"}"#,
                "DestIp",
            ),
            (r#"{"Enable":true,"IfDeviceName":"a/b"}"#, "IfDeviceName"),
            (
                r#"{"Enable":true,"IfDeviceName":"abcdefghijklmnop"}"#,
                "IfDeviceName",
            ),
            (r#"{"Enable":true,"SourceIp":5}"#, "SourceIp"),
        ];
        for (json, field) in cases {
            let e = err(json);
            assert_eq!(e.code(), "Tcpdump.InvalidValue", "{json}");
            assert!(e.message().contains(field), "{json}: {}", e.message());
        }
        assert_eq!(
            start(r#"{"Enable":true,"FileSize":1073741824}"#).file_size,
            Some(MAX_FILE_SIZE)
        );
    }
}
