//! The capture file: pcapng with nanosecond wall-clock timestamps
//! (`if_tsresol = 9`), one interface whose description names the container
//! group, a direction flag on every packet, and an Interface Statistics
//! Block at the end with the kernel's counters.
//!
//! The writer is generic over [`Write`], so a file, a pipe or stdout will do.
//! It keeps the exact number of bytes written and never lets the file grow
//! past its limit: a packet that would not fit is refused, and room for the
//! closing statistics block is reserved from the start.

use std::{
    borrow::Cow,
    io::{self, Write},
    time::Duration,
};

use ops_common::tc::Direction;
use pcap_file::{
    pcapng::{
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            interface_statistics::{InterfaceStatisticsBlock, InterfaceStatisticsOption},
            section_header::{SectionHeaderBlock, SectionHeaderOption},
        },
        PcapNgWriter,
    },
    DataLink, PcapError,
};

/// `if_tsresol` 9: timestamps count nanoseconds (pcap-file writes
/// `Duration::as_nanos`, so the two must agree).
const TSRESOL_NANOS: u8 = 9;
/// `epb_flags` direction bits (pcapng spec, 4.3.1).
const EPB_INBOUND: u32 = 0b01;
const EPB_OUTBOUND: u32 = 0b10;

/// What the file says about the captured interface.
#[derive(Clone, Debug)]
pub struct InterfaceInfo {
    /// `if_name`, e.g. `eth0`.
    pub name: String,
    /// `if_description`, naming the container group.
    pub description: String,
    /// The snaplen the capture was asked for.
    pub snaplen: u32,
}

/// Counters for the closing Interface Statistics Block.
#[derive(Clone, Copy, Debug, Default)]
pub struct FileStats {
    /// Wall-clock nanoseconds of the start and end of the capture.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Packets that matched the filter (`isb_filteraccept`).
    pub matched: u64,
    /// Matched packets lost on their way to userspace (`isb_osdrop`).
    pub lost: u64,
    /// Packets written to this file (`isb_usrdeliv`).
    pub written: u64,
}

/// A [`Write`] that counts what passes through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// An open pcapng stream with a size limit.
pub struct PcapNgSink<W: Write> {
    writer: PcapNgWriter<Counting<W>>,
    /// Bytes packets may use: the limit less the reserved statistics block.
    packet_budget: u64,
}

impl<W: Write> PcapNgSink<W> {
    /// Write the section and interface headers. `limit` is the largest the
    /// whole stream may become; it must at least hold the headers and the
    /// closing statistics block ([`Self::min_size`]).
    pub fn new(inner: W, interface: &InterfaceInfo, limit: Option<u64>) -> io::Result<Self> {
        let min = Self::min_size(interface);
        if let Some(limit) = limit.filter(|l| *l < min) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a pcapng file needs at least {min} bytes, the limit is {limit}"),
            ));
        }
        let mut writer =
            PcapNgWriter::with_section_header(Counting { inner, bytes: 0 }, section_header())
                .map_err(into_io)?;
        writer
            .write_pcapng_block(interface_block(interface))
            .map_err(into_io)?;
        let packet_budget = limit.unwrap_or(u64::MAX) - isb_len();
        Ok(Self {
            writer,
            packet_budget,
        })
    }

    /// The smallest stream: headers and the statistics block, no packet.
    pub fn min_size(interface: &InterfaceInfo) -> u64 {
        let mut writer = PcapNgWriter::with_section_header(Vec::new(), section_header())
            .expect("writing to a Vec");
        writer
            .write_pcapng_block(interface_block(interface))
            .expect("writing to a Vec");
        writer.get_ref().len() as u64 + isb_len()
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.writer.get_ref().bytes
    }

    /// The size of the Enhanced Packet Block of a packet of `cap_len` bytes:
    /// 28 bytes of header, the data padded to 4, the flags option (8), the
    /// end of options (4) and the trailing length (4).
    pub const fn packet_block_len(cap_len: usize) -> u64 {
        (28 + cap_len.next_multiple_of(4) + 8 + 4 + 4) as u64
    }

    /// Append one packet, or return `Ok(false)` and write nothing when it
    /// would take the stream past its limit.
    pub fn write_packet(
        &mut self,
        timestamp: Duration,
        orig_len: u32,
        data: &[u8],
        direction: Direction,
    ) -> io::Result<bool> {
        if self.bytes() + Self::packet_block_len(data.len()) > self.packet_budget {
            return Ok(false);
        }
        let flags = match direction {
            Direction::Ingress => EPB_INBOUND,
            Direction::Egress => EPB_OUTBOUND,
        };
        self.writer
            .write_pcapng_block(EnhancedPacketBlock {
                interface_id: 0,
                timestamp,
                original_len: orig_len.max(data.len() as u32),
                data: Cow::Borrowed(data),
                options: vec![EnhancedPacketOption::Flags(flags)],
            })
            .map_err(into_io)?;
        Ok(true)
    }

    /// Write the statistics block, flush, and give the stream back.
    pub fn finish(mut self, stats: &FileStats) -> io::Result<W> {
        self.writer
            .write_pcapng_block(statistics_block(stats))
            .map_err(into_io)?;
        let mut counting = self.writer.into_inner();
        counting.flush()?;
        Ok(counting.inner)
    }
}

fn into_io(e: PcapError) -> io::Error {
    match e {
        PcapError::IoError(e) => e,
        other => io::Error::other(other),
    }
}

fn section_header() -> SectionHeaderBlock<'static> {
    SectionHeaderBlock {
        // Native order: no byte swapping while writing; readers handle both.
        endianness: pcap_file::Endianness::native(),
        options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
            "ops {}",
            env!("CARGO_PKG_VERSION")
        )))],
        ..SectionHeaderBlock::default()
    }
}

fn interface_block(interface: &InterfaceInfo) -> InterfaceDescriptionBlock<'static> {
    InterfaceDescriptionBlock {
        linktype: DataLink::ETHERNET,
        snaplen: interface.snaplen,
        options: vec![
            InterfaceDescriptionOption::IfName(Cow::Owned(interface.name.clone())),
            InterfaceDescriptionOption::IfDescription(Cow::Owned(interface.description.clone())),
            InterfaceDescriptionOption::IfTsResol(TSRESOL_NANOS),
        ],
    }
}

fn statistics_block(stats: &FileStats) -> InterfaceStatisticsBlock<'static> {
    // Every option is always present, so the block has a fixed size.
    InterfaceStatisticsBlock {
        interface_id: 0,
        timestamp: stats.end_ns,
        options: vec![
            InterfaceStatisticsOption::IsbStartTime(stats.start_ns),
            InterfaceStatisticsOption::IsbEndTime(stats.end_ns),
            InterfaceStatisticsOption::IsbFilterAccept(stats.matched),
            InterfaceStatisticsOption::IsbOsDrop(stats.lost),
            InterfaceStatisticsOption::IsbUsrDeliv(stats.written),
        ],
    }
}

/// The size of the closing statistics block, measured by writing one.
fn isb_len() -> u64 {
    let mut writer =
        PcapNgWriter::with_section_header(Vec::new(), section_header()).expect("writing to a Vec");
    writer
        .write_pcapng_block(InterfaceDescriptionBlock::new(DataLink::ETHERNET, 0))
        .expect("writing to a Vec");
    let before = writer.get_ref().len();
    writer
        .write_pcapng_block(statistics_block(&FileStats::default()))
        .expect("writing to a Vec");
    (writer.get_ref().len() - before) as u64
}

#[cfg(test)]
mod tests {
    use pcap_file::pcapng::{Block, PcapNgReader};

    use super::*;

    fn interface() -> InterfaceInfo {
        InterfaceInfo {
            name: "eth0".into(),
            description: "container group eci-test, interface eth0".into(),
            snaplen: 65535,
        }
    }

    #[test]
    fn packet_block_len_is_what_is_written() {
        for len in [0, 1, 2, 3, 4, 5, 60, 1514, 65492] {
            let mut sink = PcapNgSink::new(Vec::new(), &interface(), None).unwrap();
            let before = sink.bytes();
            let data = vec![0xab; len];
            assert!(sink
                .write_packet(
                    Duration::from_nanos(1),
                    len as u32,
                    &data,
                    Direction::Egress
                )
                .unwrap());
            assert_eq!(
                sink.bytes() - before,
                PcapNgSink::<Vec<u8>>::packet_block_len(len)
            );
        }
    }

    #[test]
    fn round_trips_through_the_pcap_file_reader() {
        let mut sink = PcapNgSink::new(Vec::new(), &interface(), None).unwrap();
        let ts = Duration::new(1_700_000_000, 123_456_789);
        sink.write_packet(ts, 100, &[1, 2, 3], Direction::Ingress)
            .unwrap();
        sink.write_packet(
            ts + Duration::from_nanos(1),
            4,
            &[4, 5, 6, 7],
            Direction::Egress,
        )
        .unwrap();
        let stats = FileStats {
            start_ns: 1,
            end_ns: 2,
            matched: 3,
            lost: 1,
            written: 2,
        };
        let bytes = sink.finish(&stats).unwrap();
        let mut reader = PcapNgReader::new(&bytes[..]).unwrap();
        let mut packets = Vec::new();
        let mut saw_stats = false;
        while let Some(block) = reader.next_block() {
            match block.unwrap() {
                Block::InterfaceDescription(idb) => {
                    assert!(idb
                        .options
                        .contains(&InterfaceDescriptionOption::IfTsResol(9)));
                    assert!(idb.options.iter().any(|o| matches!(o,
                        InterfaceDescriptionOption::IfDescription(d) if d.contains("eci-test"))));
                }
                Block::EnhancedPacket(epb) => packets.push((
                    epb.timestamp,
                    epb.original_len,
                    epb.data.to_vec(),
                    epb.options
                        .iter()
                        .filter_map(|o| match o {
                            EnhancedPacketOption::Flags(f) => Some(*f),
                            _ => None,
                        })
                        .collect::<Vec<u32>>(),
                )),
                Block::InterfaceStatistics(isb) => {
                    saw_stats = true;
                    assert!(isb
                        .options
                        .contains(&InterfaceStatisticsOption::IsbOsDrop(1)));
                }
                _ => {}
            }
        }
        assert!(saw_stats);
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[0].0, ts);
        assert_eq!(packets[0].1, 100);
        assert_eq!(packets[0].2, [1, 2, 3]);
        assert_eq!(packets[0].3, [EPB_INBOUND]);
        assert_eq!(packets[1].3, [EPB_OUTBOUND]);
    }

    #[test]
    fn the_limit_is_never_exceeded() {
        let min = PcapNgSink::<Vec<u8>>::min_size(&interface());
        assert!(PcapNgSink::new(Vec::new(), &interface(), Some(min - 1)).is_err());
        for limit in [min, min + 50, min + 1000, min + 1001, min + 4096] {
            let mut sink = PcapNgSink::new(Vec::new(), &interface(), Some(limit)).unwrap();
            let mut n = 0u64;
            while sink
                .write_packet(Duration::ZERO, 98, &[7u8; 98], Direction::Egress)
                .unwrap()
            {
                n += 1;
            }
            let bytes = sink.finish(&FileStats::default()).unwrap();
            assert!(bytes.len() as u64 <= limit, "{} > {limit}", bytes.len());
            // And no room was wasted: one more packet would not have fitted.
            let packet = PcapNgSink::<Vec<u8>>::packet_block_len(98);
            assert!(bytes.len() as u64 + packet > limit, "{n} packets, {limit}");
        }
    }
}
