//! A running capture: the `ops-tc` object loaded with the capture's filter,
//! attached to the group's interface, and a reader thread that moves packets
//! from the ring buffer into the pcapng file.
//!
//! The reader stops on whichever comes first: `Duration`, `PacketNum`,
//! `FileSize`, a stop request (`Enable: false`, shutdown), or the namespace
//! or interface disappearing. It then detaches the programs, drains what
//! the kernel had already delivered, reads the final counters, and closes
//! the file with its statistics block, flushed.

use std::{
    fs::File,
    io::{self, BufWriter},
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::maps::{MapData, RingBuf};
use ops_common::tc::{
    Direction, PacketMeta, STAT_CAPTURED, STAT_LOST, STAT_MATCHED, STAT_SEEN, STAT_TRUNCATED,
};

use super::{
    filter::capture_config,
    options::CaptureOptions,
    pcap::{FileStats, InterfaceInfo, PcapNgSink},
    summary::{StopReason, Summary},
};
use crate::{
    api::error::ApiError,
    ebpf::{
        self,
        netns::Netns,
        tc::{AttachMode, TcAttachment},
        EbpfError, TC_OBJECT,
    },
};

const OBJECT: &str = "ops-tc";
const PACKETS: &str = "PACKETS";
const CONFIG: &str = "CAPTURE_CONFIG";

/// Called with the summary when a capture ends, on its reader thread.
pub type OnFinish = Box<dyn FnOnce(&Summary) + Send>;

/// Knobs a caller rarely needs.
#[derive(Clone, Debug)]
pub struct Tuning {
    /// Pages of the capture's ring buffer (a power of two), shared by all
    /// CPUs. The default, 1024 pages (4 MiB), holds about 2000 full-size
    /// Ethernet frames or 60 GSO super-packets between two reads.
    pub buffer_pages: usize,
    /// How often the reader checks that the namespace and the interface
    /// still exist.
    pub liveness_interval: Duration,
    /// Start with reading paused (see [`CaptureHandle::set_paused`]).
    pub paused: bool,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            buffer_pages: 1024,
            liveness_interval: Duration::from_millis(200),
            paused: false,
        }
    }
}

/// A live view of a running capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub written: u64,
    pub bytes_written: u64,
    /// Kernel counters as of the last liveness check (every
    /// `liveness_interval`): packets that matched, and matches lost
    /// because the ring was full.
    pub matched: u64,
    pub lost: u64,
    pub elapsed: Duration,
    pub running: bool,
}

/// State shared between a [`CaptureHandle`] and its reader thread.
struct Shared {
    stop: Mutex<Option<StopReason>>,
    /// An eventfd the reader polls, so a stop request wakes it at once.
    wake: OwnedFd,
    paused: AtomicBool,
    written: AtomicU64,
    bytes: AtomicU64,
    matched: AtomicU64,
    lost: AtomicU64,
    started: Instant,
}

impl Shared {
    fn request_stop(&self, reason: StopReason) {
        let mut stop = self.stop.lock().unwrap_or_else(|e| e.into_inner());
        if stop.is_none() {
            *stop = Some(reason);
        }
        drop(stop);
        self.wake();
    }

    fn requested(&self) -> Option<StopReason> {
        self.stop.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn wake(&self) {
        let one = 1u64;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd. A full
        // counter (EAGAIN) already means "wake up".
        unsafe { libc::write(self.wake.as_raw_fd(), (&raw const one).cast(), 8) };
    }
}

/// Starting a capture.
pub struct Capture;

impl Capture {
    /// Start capturing `options.interface` in `netns` into a pcapng file at
    /// `out`, for container group `group_id`. Returns once the programs are
    /// attached; packets flow from then on.
    ///
    /// Errors: an interface missing from the namespace or a `FileSize` too
    /// small for the file's headers is `Tcpdump.InvalidValue`; anything else
    /// (file creation, loading, attaching) is `Ops.ExecuteTaskFail`.
    pub fn start(
        group_id: &str,
        netns: Netns,
        options: CaptureOptions,
        out: PathBuf,
        mode: AttachMode,
    ) -> Result<CaptureHandle, ApiError> {
        Self::start_with(group_id, netns, options, out, mode, Tuning::default(), None)
    }

    /// [`Self::start`] with tuning and a callback that receives the summary
    /// when the capture ends, whatever ends it (run on the reader thread).
    pub fn start_with(
        group_id: &str,
        netns: Netns,
        options: CaptureOptions,
        out: PathBuf,
        mode: AttachMode,
        tuning: Tuning,
        on_finish: Option<OnFinish>,
    ) -> Result<CaptureHandle, ApiError> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            ApiError::OpsExecuteTaskFail(format!(
                "tcpdump for container group {group_id}: {what}: {e}"
            ))
        };
        let ifindex = match netns.ifindex(&options.interface) {
            Ok(i) => i,
            Err(EbpfError::NoSuchInterface { name, .. }) => {
                return Err(ApiError::tcpdump_field(
                    "IfDeviceName",
                    format!("no interface `{name}` in container group {group_id}"),
                ))
            }
            Err(e) => return Err(fail("entering its network namespace", &chain(&e))),
        };

        let interface = InterfaceInfo {
            name: options.interface.clone(),
            description: format!(
                "container group {group_id}, interface {}",
                options.interface
            ),
            snaplen: options.snaplen,
        };
        let min = PcapNgSink::<File>::min_size(&interface);
        if options.file_size.is_some_and(|s| s < min) {
            return Err(ApiError::tcpdump_field(
                "FileSize",
                format!("a capture file needs at least {min} bytes"),
            ));
        }
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| fail(&format!("creating {}", dir.display()), &e))?;
        }
        let file =
            File::create(&out).map_err(|e| fail(&format!("creating {}", out.display()), &e))?;
        let remove_file = |e: ApiError| {
            let _ = std::fs::remove_file(&out);
            e
        };
        let sink = PcapNgSink::new(
            BufWriter::with_capacity(1 << 20, file),
            &interface,
            options.file_size,
        )
        .map_err(|e| remove_file(fail("writing the pcapng header", &e)))?;

        let (attachment, ring) =
            load_and_attach(netns.clone(), &options, mode, tuning.buffer_pages)
                .map_err(|e| remove_file(fail("attaching the capture programs", &chain(&e))))?;
        tracing::info!(
            group_id,
            interface = options.interface,
            attached = %attachment.attached(),
            path = %out.display(),
            "tcpdump started"
        );

        // SAFETY: plain eventfd(2); the fd is owned right away.
        let wake = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if wake < 0 {
            let e = io::Error::last_os_error();
            drop(attachment);
            return Err(remove_file(fail("eventfd", &e)));
        }
        let shared = Arc::new(Shared {
            stop: Mutex::new(None),
            // SAFETY: a fresh, valid descriptor that nothing else owns.
            wake: unsafe { OwnedFd::from_raw_fd(wake) },
            paused: AtomicBool::new(tuning.paused),
            written: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            matched: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            started: Instant::now(),
        });
        let snaplen = options.snaplen;
        let reader = Reader {
            shared: Arc::clone(&shared),
            attachment,
            ring,
            netns,
            ifindex,
            options,
            liveness_interval: tuning.liveness_interval,
            writer: Writer {
                sink: Some(sink),
                clock: WallClock::sample(),
                limit: None,
                packet_num: None,
                written: 0,
                not_written: 0,
                scratch: Vec::new(),
                snaplen,
                error: None,
            },
            path: out.clone(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("tcpdump-{group_id}"))
            .spawn(move || {
                let summary = reader.run();
                tracing::info!("tcpdump finished: {summary}");
                if let Some(on_finish) = on_finish {
                    on_finish(&summary);
                }
                summary
            })
            .map_err(|e| fail("spawning the reader thread", &e))?;
        Ok(CaptureHandle {
            shared,
            thread: Some(thread),
            path: out,
        })
    }
}

/// `e` with its sources, for a one-line message.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

fn load_and_attach(
    netns: Netns,
    options: &CaptureOptions,
    mode: AttachMode,
    pages: usize,
) -> Result<(TcAttachment, RingBuf<MapData>), EbpfError> {
    let config = capture_config(options);
    let ring_bytes = (pages.max(1).next_power_of_two() * page_size()) as u32;
    let mut object = ebpf::load_with(OBJECT, TC_OBJECT, |loader| {
        loader
            .override_global(CONFIG, &config, true)
            .map_max_entries(PACKETS, ring_bytes);
    })?;
    let map = object.take_map(PACKETS).ok_or(EbpfError::MissingMap {
        object: OBJECT,
        name: PACKETS,
    })?;
    let ring = RingBuf::try_from(map).map_err(|source| EbpfError::Map {
        name: PACKETS,
        source,
    })?;
    let attachment = TcAttachment::attach(object, netns, &options.interface, mode)?;
    Ok((attachment, ring))
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size).unwrap_or(4096)
}

/// CLOCK_MONOTONIC (what `bpf_ktime_get_ns` reads) to wall-clock time.
#[derive(Clone, Copy, Debug)]
struct WallClock {
    /// REALTIME minus MONOTONIC, in nanoseconds.
    offset_ns: i128,
}

impl WallClock {
    /// Sample the offset: the REALTIME reading between two MONOTONIC ones
    /// that are closest together, so scheduling noise does not skew it.
    fn sample() -> Self {
        let mut best = (i128::MAX, 0i128);
        for _ in 0..8 {
            let m1 = clock_ns(libc::CLOCK_MONOTONIC);
            let r = clock_ns(libc::CLOCK_REALTIME);
            let m2 = clock_ns(libc::CLOCK_MONOTONIC);
            let gap = m2 - m1;
            if gap < best.0 {
                best = (gap, r - (m1 + m2) / 2);
            }
        }
        Self { offset_ns: best.1 }
    }

    fn wall(&self, monotonic_ns: u64) -> Duration {
        let ns = (i128::from(monotonic_ns) + self.offset_ns).max(0);
        Duration::from_nanos(ns.min(i128::from(u64::MAX)) as u64)
    }

    fn now(&self) -> u64 {
        clock_ns(libc::CLOCK_REALTIME).max(0) as u64
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a valid timespec to fill.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// The file side of the reader: turns samples into packet blocks and
/// enforces `PacketNum` and `FileSize`.
struct Writer {
    sink: Option<PcapNgSink<BufWriter<File>>>,
    clock: WallClock,
    /// Set once a limit is reached; later samples are only counted.
    limit: Option<StopReason>,
    packet_num: Option<u64>,
    written: u64,
    not_written: u64,
    /// For packets whose VLAN tag is put back.
    scratch: Vec<u8>,
    snaplen: u32,
    error: Option<io::Error>,
}

impl Writer {
    fn on_record(&mut self, bytes: &[u8]) {
        let (Some(sink), None) = (self.sink.as_mut(), &self.limit) else {
            self.not_written += 1;
            return;
        };
        let header = size_of::<PacketMeta>();
        let parsed = PacketMeta::from_bytes(bytes).and_then(|meta| {
            let data = bytes.get(header..header + meta.cap_len as usize)?;
            Some((meta, data, Direction::from_u32(meta.direction)?))
        });
        let Some((meta, data, direction)) = parsed else {
            // Only a mismatch between object and daemon could do this.
            self.limit = Some(StopReason::Error(format!(
                "malformed packet record of {} bytes",
                bytes.len()
            )));
            self.not_written += 1;
            return;
        };
        // Put an accelerated VLAN tag back where it was on the wire (after
        // the MAC addresses), as libpcap does, then apply the snaplen.
        let (data, orig_len) = match meta.vlan_tag() {
            Some(tag) if data.len() >= 12 => {
                self.scratch.clear();
                self.scratch.extend_from_slice(&data[..12]);
                self.scratch.extend_from_slice(&tag);
                self.scratch.extend_from_slice(&data[12..]);
                self.scratch.truncate(self.snaplen as usize);
                (&self.scratch[..], meta.orig_len + 4)
            }
            _ => (data, meta.orig_len),
        };
        match sink.write_packet(self.clock.wall(meta.ktime_ns), orig_len, data, direction) {
            Ok(true) => {
                self.written += 1;
                if self.packet_num.is_some_and(|n| self.written >= n) {
                    self.limit = Some(StopReason::PacketNum);
                }
            }
            Ok(false) => {
                self.not_written += 1;
                self.limit = Some(StopReason::FileSize);
            }
            Err(e) => {
                self.not_written += 1;
                self.limit = Some(StopReason::Error(format!("writing the capture file: {e}")));
                self.error = Some(e);
            }
        }
    }

    fn bytes(&self) -> u64 {
        self.sink.as_ref().map_or(0, |s| s.bytes())
    }
}

/// Everything the reader thread owns.
struct Reader {
    shared: Arc<Shared>,
    attachment: TcAttachment,
    ring: RingBuf<MapData>,
    netns: Netns,
    ifindex: u32,
    options: CaptureOptions,
    liveness_interval: Duration,
    writer: Writer,
    path: PathBuf,
}

impl Reader {
    fn run(mut self) -> Summary {
        let started = Instant::now();
        let start_ns = self.writer.clock.now();
        self.writer.packet_num = self.options.packet_num;
        let deadline = self.options.duration.map(|d| started + d);
        let reason = self.wait_for_stop(deadline);

        // Detach first: from here on the kernel delivers nothing new, so
        // draining empties the buffers for good and the counters are final.
        self.attachment.detach();
        // A program that started before the detach may still be finishing
        // on another CPU (clsact filters go away after an RCU grace period):
        // drain until every record the counters know of has been read.
        let mut counters = self.counters();
        for _ in 0..50 {
            self.drain();
            let captured = counters.2;
            if captured <= self.writer.written + self.writer.not_written {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
            counters = self.counters();
        }
        let (seen, matched, captured, lost, truncated) = counters;

        let mut stop_reason = reason;
        let mut bytes_written = self.writer.bytes();
        if let Some(sink) = self.writer.sink.take() {
            let stats = FileStats {
                start_ns,
                end_ns: self.writer.clock.now(),
                matched,
                lost,
                written: self.writer.written,
            };
            bytes_written = sink.bytes();
            match sink.finish(&stats) {
                Ok(file) => {
                    if let Err(e) = file
                        .into_inner()
                        .map_err(|e| e.into_error())
                        .and_then(|f| f.sync_all())
                    {
                        stop_reason = StopReason::Error(format!("flushing the capture file: {e}"));
                    }
                    bytes_written = file_len(&self.path).unwrap_or(bytes_written);
                }
                Err(e) => stop_reason = StopReason::Error(format!("closing the capture file: {e}")),
            }
        }
        if let Some(e) = &self.writer.error {
            stop_reason = StopReason::Error(format!("writing the capture file: {e}"));
        }
        Summary {
            path: self.path,
            stop_reason,
            seen,
            matched,
            captured,
            lost,
            truncated,
            written: self.writer.written,
            not_written: self.writer.not_written,
            bytes_written,
            elapsed: started.elapsed(),
        }
    }

    /// The kernel's counters, both directions summed: seen, matched,
    /// captured, lost, truncated.
    fn counters(&self) -> (u64, u64, u64, u64, u64) {
        let stat = |s| {
            Direction::ALL
                .iter()
                .map(|d| self.attachment.stat(*d, s).unwrap_or(0))
                .sum::<u64>()
        };
        (
            stat(STAT_SEEN),
            stat(STAT_MATCHED),
            stat(STAT_CAPTURED),
            stat(STAT_LOST),
            stat(STAT_TRUNCATED),
        )
    }

    /// Read packets until something says stop; return what.
    fn wait_for_stop(&mut self, deadline: Option<Instant>) -> StopReason {
        let mut next_check = Instant::now() + self.liveness_interval;
        loop {
            if let Some(reason) = self.shared.requested() {
                return reason;
            }
            if let Some(reason) = self.writer.limit.clone() {
                return reason;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return StopReason::Duration;
            }
            if now >= next_check {
                if let Some(reason) = self.liveness() {
                    return reason;
                }
                // For live progress (`ops tcpdump` shows drops as they happen).
                let (_, matched, _, lost, _) = self.counters();
                self.shared.matched.store(matched, Ordering::Relaxed);
                self.shared.lost.store(lost, Ordering::Relaxed);
                next_check = Instant::now() + self.liveness_interval;
            }
            let until = deadline.map_or(next_check, |d| d.min(next_check));
            let timeout = until.saturating_duration_since(Instant::now());
            let paused = self.shared.paused.load(Ordering::Relaxed);
            if self.poll(timeout, paused) && !paused {
                self.drain();
            }
        }
    }

    /// Whether the group's namespace and interface are still there.
    fn liveness(&self) -> Option<StopReason> {
        if !self.netns.still_named() {
            return Some(StopReason::NamespaceGone);
        }
        match self.netns.ifindex(&self.options.interface) {
            Ok(i) if i == self.ifindex => None,
            // Gone, or replaced by another interface of the same name.
            _ => Some(StopReason::InterfaceGone),
        }
    }

    /// Wait for data (unless paused) or a wake-up. True if anything is
    /// readable.
    fn poll(&self, timeout: Duration, paused: bool) -> bool {
        let mut fds = [
            pollfd(self.shared.wake.as_raw_fd()),
            pollfd(self.ring.as_raw_fd()),
        ];
        let count = if paused { 1 } else { 2 };
        let ms = timeout.as_millis().clamp(0, i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of at least `count` pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), count, ms) };
        if n > 0 && fds[0].revents != 0 {
            let mut counter = 0u64;
            // SAFETY: reads 8 bytes into a valid u64 from our eventfd.
            unsafe { libc::read(self.shared.wake.as_raw_fd(), (&raw mut counter).cast(), 8) };
        }
        n > 0
    }

    /// Move every record the ring holds into the file.
    fn drain(&mut self) {
        let writer = &mut self.writer;
        while let Some(record) = self.ring.next() {
            writer.on_record(&record);
        }
        self.shared.written.store(writer.written, Ordering::Relaxed);
        self.shared.bytes.store(writer.bytes(), Ordering::Relaxed);
    }
}

fn pollfd(fd: RawFd) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// A running capture. Dropping it stops the capture (as a shutdown) and
/// waits for the file to be complete.
pub struct CaptureHandle {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Summary>>,
    path: PathBuf,
}

impl CaptureHandle {
    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Packets and bytes written so far.
    pub fn progress(&self) -> Progress {
        Progress {
            written: self.shared.written.load(Ordering::Relaxed),
            bytes_written: self.shared.bytes.load(Ordering::Relaxed),
            matched: self.shared.matched.load(Ordering::Relaxed),
            lost: self.shared.lost.load(Ordering::Relaxed),
            elapsed: self.shared.started.elapsed(),
            running: !self.is_finished(),
        }
    }

    /// Whether the capture has stopped by itself (a limit, a vanished
    /// interface) and its file is closed.
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Pause or resume reading the ring buffer, leaving the kernel side
    /// running: what a stalled reader looks like, for testing and
    /// diagnosing loss accounting. While paused, matched packets that do
    /// not fit the buffers are counted as lost.
    pub fn set_paused(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Relaxed);
        self.shared.wake();
    }

    /// Stop now (unless the capture already stopped by itself) and return
    /// the summary once the file is complete.
    pub fn stop(mut self, reason: StopReason) -> Summary {
        self.shared.request_stop(reason);
        self.join()
    }

    /// Wait for the capture to stop by itself.
    pub fn wait(mut self) -> Summary {
        self.join()
    }

    fn join(&mut self) -> Summary {
        let thread = self.thread.take().expect("joined once");
        thread.join().unwrap_or_else(|_| Summary {
            path: self.path.clone(),
            stop_reason: StopReason::Error("the capture thread panicked".into()),
            seen: 0,
            matched: 0,
            captured: 0,
            lost: 0,
            truncated: 0,
            written: 0,
            not_written: 0,
            bytes_written: file_len(&self.path).unwrap_or(0),
            elapsed: Duration::ZERO,
        })
    }
}

impl Drop for CaptureHandle {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.request_stop(StopReason::Shutdown);
            let _ = self.join();
        }
    }
}
