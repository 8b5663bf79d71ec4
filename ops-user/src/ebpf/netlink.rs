//! The few rtnetlink requests aya does not offer: deleting a clsact qdisc we
//! created, and asking whether any TC filter is left on a hook.
//!
//! Requests go to the network namespace of the calling thread, so callers
//! run them inside [`super::netns::Netns::run`].

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

use super::EbpfError;

const RTM_DELQDISC: u16 = 37;
const RTM_NEWTFILTER: u16 = 44;
const RTM_GETTFILTER: u16 = 46;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const TCA_KIND: u16 = 1;

/// `TC_H_CLSACT`: the parent id of the clsact qdisc.
const TC_H_CLSACT: u32 = 0xffff_fff1;
/// clsact's own handle, `ffff:`.
const CLSACT_HANDLE: u32 = 0xffff_0000;

/// The two hooks of a clsact qdisc, as filter parents
/// (`TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS|EGRESS)`).
#[derive(Clone, Copy, Debug)]
pub enum Hook {
    Ingress,
    Egress,
}

impl Hook {
    const fn parent(self) -> u32 {
        match self {
            Self::Ingress => 0xffff_fff2,
            Self::Egress => 0xffff_fff3,
        }
    }
}

const NLMSGHDR_LEN: usize = 16;
const TCMSG_LEN: usize = 20;

struct Socket(OwnedFd);

impl Socket {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn send(&self, msg: &[u8]) -> io::Result<()> {
        // SAFETY: msg is a valid buffer of msg.len() bytes.
        let n = unsafe { libc::send(self.0.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receive one datagram (possibly several netlink messages).
    fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        // SAFETY: buf is a valid, writable buffer of buf.len() bytes.
        let n = unsafe { libc::recv(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }
}

/// A `tcmsg` request with an optional TCA_KIND attribute.
fn tc_request(
    kind: u16,
    flags: u16,
    ifindex: u32,
    handle: u32,
    parent: u32,
    tca_kind: Option<&str>,
) -> Vec<u8> {
    let mut msg = vec![0u8; NLMSGHDR_LEN];
    msg[4..6].copy_from_slice(&kind.to_ne_bytes());
    msg[6..8].copy_from_slice(&flags.to_ne_bytes());
    msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
    // tcmsg: family (AF_UNSPEC), padding, ifindex, handle, parent, info.
    msg.extend_from_slice(&[0u8; 4]);
    msg.extend_from_slice(&(ifindex as i32).to_ne_bytes());
    msg.extend_from_slice(&handle.to_ne_bytes());
    msg.extend_from_slice(&parent.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    if let Some(value) = tca_kind {
        let len = 4 + value.len() + 1;
        msg.extend_from_slice(&(len as u16).to_ne_bytes());
        msg.extend_from_slice(&TCA_KIND.to_ne_bytes());
        msg.extend_from_slice(value.as_bytes());
        msg.push(0);
        msg.resize(msg.len().next_multiple_of(4), 0);
    }
    let total = msg.len() as u32;
    msg[0..4].copy_from_slice(&total.to_ne_bytes());
    debug_assert!(msg.len() >= NLMSGHDR_LEN + TCMSG_LEN);
    msg
}

/// Walk the netlink messages of one datagram: (type, payload).
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < NLMSGHDR_LEN {
            return None;
        }
        let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
        if len < NLMSGHDR_LEN || len > rest.len() {
            return None;
        }
        let payload = &rest[NLMSGHDR_LEN..len];
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        Some((kind, payload))
    })
}

fn errno_of(payload: &[u8]) -> i32 {
    payload
        .get(0..4)
        .and_then(|b| b.try_into().ok())
        .map(i32::from_ne_bytes)
        .unwrap_or(-libc::EPROTO)
}

/// Delete the clsact qdisc of `ifindex` (and, with it, every filter on it).
/// Only for a qdisc this process created.
pub fn delete_clsact(ifindex: u32) -> Result<(), EbpfError> {
    let err = |source| EbpfError::Netlink {
        action: "delete clsact qdisc",
        source,
    };
    let sock = Socket::open().map_err(err)?;
    sock.send(&tc_request(
        RTM_DELQDISC,
        NLM_F_REQUEST | NLM_F_ACK,
        ifindex,
        CLSACT_HANDLE,
        TC_H_CLSACT,
        Some("clsact"),
    ))
    .map_err(err)?;
    let mut buf = vec![0u8; 8192];
    loop {
        let n = sock.recv(&mut buf).map_err(err)?;
        for (kind, payload) in messages(&buf[..n]) {
            if kind == NLMSG_ERROR {
                return match errno_of(payload) {
                    0 => Ok(()),
                    e => Err(err(io::Error::from_raw_os_error(-e))),
                };
            }
        }
    }
}

/// How many filter entries `tc filter show dev IF ingress|egress` would list.
pub fn filter_count(ifindex: u32, hook: Hook) -> Result<usize, EbpfError> {
    let err = |source| EbpfError::Netlink {
        action: "dump tc filters",
        source,
    };
    let sock = Socket::open().map_err(err)?;
    sock.send(&tc_request(
        RTM_GETTFILTER,
        NLM_F_REQUEST | NLM_F_DUMP,
        ifindex,
        0,
        hook.parent(),
        None,
    ))
    .map_err(err)?;
    let mut buf = vec![0u8; 32 * 1024];
    let mut count = 0;
    loop {
        let n = sock.recv(&mut buf).map_err(err)?;
        for (kind, payload) in messages(&buf[..n]) {
            match kind {
                RTM_NEWTFILTER => count += 1,
                NLMSG_DONE => return Ok(count),
                NLMSG_ERROR => match errno_of(payload) {
                    0 => return Ok(count),
                    // No clsact qdisc: no filters either.
                    e if -e == libc::EINVAL || -e == libc::ENOENT => return Ok(0),
                    e => return Err(err(io::Error::from_raw_os_error(-e))),
                },
                _ => {}
            }
        }
        if n == 0 {
            return Ok(count);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_layout_is_aligned_and_sized() {
        let msg = tc_request(
            RTM_DELQDISC,
            NLM_F_REQUEST,
            7,
            CLSACT_HANDLE,
            TC_H_CLSACT,
            Some("clsact"),
        );
        assert_eq!(msg.len() % 4, 0);
        assert_eq!(
            u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize,
            msg.len()
        );
        assert_eq!(i32::from_ne_bytes(msg[20..24].try_into().unwrap()), 7);
        assert_eq!(&msg[40..47], b"clsact\0");
    }

    #[test]
    fn message_walk_stops_on_garbage() {
        assert_eq!(messages(&[0u8; 3]).count(), 0);
        let mut bogus = vec![0u8; 16];
        bogus[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert_eq!(messages(&bogus).count(), 0);
    }
}
