//! Attaching the TC classifiers of `ops-tc` to an interface inside a
//! container group's network namespace, and detaching them again.
//!
//! Two kernel mechanisms exist:
//! - **TCX** (Linux 6.6+, `CONFIG_NET_XGRESS`): a BPF link; the kernel
//!   detaches it when its fd closes, so a crashed daemon leaves nothing.
//! - **clsact + cls_bpf** over netlink (older kernels): filters outlive the
//!   process, so they are removed explicitly, and a clsact qdisc is deleted
//!   only if this process created it, no attachment of this process still
//!   uses it, and no filter is left on it. Several captures may share one
//!   qdisc: the first creates it, the last one out deletes it.
//!
//! [`TcAttachment`] owns the result and undoes it on drop.

use std::{fmt, str::FromStr};

use aya::{
    maps::PerCpuArray,
    programs::{
        tc::{self, NlOptions, SchedClassifierLink, TcAttachOptions},
        LinkOrder, SchedClassifier, TcAttachType,
    },
    Ebpf,
};
use ops_common::tc::{stat_index, Direction, STAT_SEEN};

use super::{netlink, netns::Netns, EbpfError};

/// How to attach. `Auto` picks TCX and falls back to clsact when the kernel
/// refuses TCX (6.1-era kernels).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttachMode {
    #[default]
    Auto,
    Tcx,
    Clsact,
}

impl AttachMode {
    /// The environment variable that overrides the configured mode, so tests
    /// and operators can force the clsact path on a TCX-capable kernel.
    pub const ENV: &'static str = "OPS_TC_ATTACH";

    /// The configured mode, unless [`Self::ENV`] says otherwise.
    pub fn from_env_or(self) -> Result<Self, String> {
        match std::env::var(Self::ENV) {
            Ok(value) => value.parse(),
            Err(_) => Ok(self),
        }
    }
}

impl FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "tcx" => Ok(Self::Tcx),
            "clsact" => Ok(Self::Clsact),
            other => Err(format!(
                "unknown TC attach mode `{other}` (auto, tcx or clsact)"
            )),
        }
    }
}

/// The mechanism an attachment ended up using.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attached {
    Tcx,
    Clsact,
}

impl fmt::Display for Attached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcx => "tcx",
            Self::Clsact => "clsact",
        })
    }
}

/// The classifier for each direction in the `ops-tc` object.
pub const fn program_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Ingress => "ops_tc_ingress",
        Direction::Egress => "ops_tc_egress",
    }
}

const fn attach_type(direction: Direction) -> TcAttachType {
    match direction {
        Direction::Ingress => TcAttachType::Ingress,
        Direction::Egress => TcAttachType::Egress,
    }
}

/// The classifiers of one loaded `ops-tc` object, attached to both
/// directions of one interface. Dropping it detaches them (inside the
/// namespace, where netlink needs to be) and removes a clsact qdisc it
/// created.
pub struct TcAttachment {
    // Field order matters for Drop: links go before the object.
    links: Vec<SchedClassifierLink>,
    ebpf: Ebpf,
    netns: Netns,
    interface: String,
    ifindex: u32,
    attached: Attached,
    created_clsact: bool,
}

impl TcAttachment {
    /// Load both classifiers of `ebpf` and attach them to `interface` in
    /// `netns`.
    pub fn attach(
        mut ebpf: Ebpf,
        netns: Netns,
        interface: &str,
        mode: AttachMode,
    ) -> Result<Self, EbpfError> {
        for direction in Direction::ALL {
            classifier(&mut ebpf, direction)?
                .load()
                .map_err(|source| EbpfError::Program {
                    name: program_name(direction),
                    action: "load",
                    source,
                })?;
        }
        let ifindex = netns.ifindex(interface)?;

        let ns = netns.clone();
        let netns_key = netns.id();
        let (links, attached, created_clsact) = ns.run(|| {
            let tcx = match mode {
                AttachMode::Clsact => None,
                AttachMode::Tcx => Some(attach_tcx(&mut ebpf, interface)?),
                AttachMode::Auto => match attach_tcx(&mut ebpf, interface) {
                    Ok(links) => Some(links),
                    Err(e) => {
                        tracing::info!(interface, "TCX unavailable ({e}); using clsact");
                        None
                    }
                },
            };
            match tcx {
                Some(links) => Ok((links, Attached::Tcx, false)),
                None => {
                    // Held across create-or-reuse and registration, so a
                    // concurrent attach or detach cannot slip in between.
                    let mut owners = ClsactOwners::lock();
                    let (links, created) = attach_clsact(&mut ebpf, interface, ifindex)?;
                    let owned = ClsactOwners::join(&mut owners, netns_key, ifindex, created);
                    Ok((links, Attached::Clsact, owned))
                }
            }
        })?;
        tracing::debug!(interface, netns = %netns.path().display(), %attached, "attached TC programs");
        Ok(Self {
            links,
            ebpf,
            netns,
            interface: interface.to_owned(),
            ifindex,
            attached,
            created_clsact,
        })
    }

    pub fn attached(&self) -> Attached {
        self.attached
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The loaded object, for its maps.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// A counter of `direction`, summed over CPUs.
    pub fn stat(&self, direction: Direction, stat: u32) -> Result<u64, EbpfError> {
        let name = "TC_STATS";
        let map = self.ebpf.map(name).ok_or(EbpfError::MissingMap {
            object: "ops-tc",
            name,
        })?;
        let stats: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| EbpfError::Map { name, source })?;
        let values = stats
            .get(&stat_index(direction, stat), 0)
            .map_err(|source| EbpfError::Map { name, source })?;
        Ok(values.iter().sum())
    }

    /// Packets seen in `direction` so far.
    pub fn seen(&self, direction: Direction) -> Result<u64, EbpfError> {
        self.stat(direction, STAT_SEEN)
    }
}

impl TcAttachment {
    /// Detach the programs now (idempotent), keeping the loaded object and
    /// its maps readable: a capture detaches first, then drains its buffers
    /// and reads the final counters.
    pub fn detach(&mut self) {
        if self.links.is_empty() {
            return;
        }
        let links = std::mem::take(&mut self.links);
        let (ifindex, owned) = (self.ifindex, std::mem::take(&mut self.created_clsact));
        let interface = self.interface.clone();
        let netns_key = self.netns.id();
        let result = self.netns.run(move || {
            // Dropping a link detaches it: TCX closes the link fd, netlink
            // deletes the filter by priority and handle in this namespace.
            let mut owners = ClsactOwners::lock();
            drop(links);
            if owned && ClsactOwners::leave(&mut owners, netns_key, ifindex) {
                let left = netlink::filter_count(ifindex, netlink::Hook::Ingress)?
                    + netlink::filter_count(ifindex, netlink::Hook::Egress)?;
                if left == 0 {
                    netlink::delete_clsact(ifindex)?;
                } else {
                    tracing::info!(
                        interface,
                        left,
                        "keeping the clsact qdisc we created: other filters now use it"
                    );
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            // The interface or namespace may be gone, taking everything with it.
            tracing::debug!(interface = %self.interface, "TC detach: {e}");
        }
    }
}

impl Drop for TcAttachment {
    fn drop(&mut self) {
        self.detach();
    }
}

/// The clsact qdiscs this process created and the number of its
/// attachments using each, so that concurrent captures on one interface
/// share the qdisc and the last one out deletes it.
struct ClsactOwners;

type QdiscKey = ((u64, u64), u32);
type Owners = Vec<(QdiscKey, usize)>;

static CLSACT_OWNERS: std::sync::Mutex<Owners> = std::sync::Mutex::new(Vec::new());

impl ClsactOwners {
    fn lock() -> std::sync::MutexGuard<'static, Owners> {
        CLSACT_OWNERS.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Register an attachment; `created` says whether it just created the
    /// qdisc. Returns whether the attachment shares ownership.
    fn join(owners: &mut Owners, netns: (u64, u64), ifindex: u32, created: bool) -> bool {
        let key = (netns, ifindex);
        if created {
            // A qdisc we created before may have been deleted by someone
            // else since; this is a new one.
            owners.retain(|(k, _)| *k != key);
            owners.push((key, 1));
            return true;
        }
        match owners.iter_mut().find(|(k, _)| *k == key) {
            Some((_, users)) => {
                *users += 1;
                true
            }
            None => false,
        }
    }

    /// Unregister an owning attachment; true if it was the last one.
    fn leave(owners: &mut Owners, netns: (u64, u64), ifindex: u32) -> bool {
        let key = (netns, ifindex);
        let Some(i) = owners.iter().position(|(k, _)| *k == key) else {
            return false;
        };
        owners[i].1 -= 1;
        if owners[i].1 == 0 {
            owners.swap_remove(i);
            true
        } else {
            false
        }
    }
}

fn classifier(ebpf: &mut Ebpf, direction: Direction) -> Result<&mut SchedClassifier, EbpfError> {
    super::program_mut(ebpf, "ops-tc", program_name(direction))
}

/// Attach both directions' classifiers with `options`; the links taken so
/// far are in `links` (and detach when dropped) whatever happens.
fn attach_both(
    ebpf: &mut Ebpf,
    interface: &str,
    options: impl Fn() -> TcAttachOptions,
    action: &'static str,
    links: &mut Vec<SchedClassifierLink>,
) -> Result<(), EbpfError> {
    for direction in Direction::ALL {
        let name = program_name(direction);
        let program = classifier(ebpf, direction)?;
        let id = program
            .attach_with_options(interface, attach_type(direction), options())
            .map_err(|source| EbpfError::Program {
                name,
                action,
                source,
            })?;
        links.push(program.take_link(id).map_err(|source| EbpfError::Program {
            name,
            action: "take link",
            source,
        })?);
    }
    Ok(())
}

fn attach_tcx(ebpf: &mut Ebpf, interface: &str) -> Result<Vec<SchedClassifierLink>, EbpfError> {
    let mut links = Vec::with_capacity(2);
    attach_both(
        ebpf,
        interface,
        || TcAttachOptions::TcxOrder(LinkOrder::default()),
        "attach (TCX)",
        &mut links,
    )?;
    Ok(links)
}

fn attach_clsact(
    ebpf: &mut Ebpf,
    interface: &str,
    ifindex: u32,
) -> Result<(Vec<SchedClassifierLink>, bool), EbpfError> {
    // "Exclusivity flag on" (EEXIST) means a clsact qdisc is already there:
    // use it and never delete it. Any other error is real.
    let created = match tc::qdisc_add_clsact(interface) {
        Ok(()) => true,
        Err(tc::TcError::NetlinkError(e)) if e.raw_os_error() == Some(libc::EEXIST) => false,
        Err(source) => {
            return Err(EbpfError::Clsact {
                interface: interface.to_owned(),
                source,
            })
        }
    };
    let mut links = Vec::with_capacity(2);
    let attached = attach_both(
        ebpf,
        interface,
        || TcAttachOptions::Netlink(NlOptions::default()),
        "attach (clsact)",
        &mut links,
    );
    if let Err(e) = attached {
        drop(links);
        if created {
            let _ = netlink::delete_clsact(ifindex);
        }
        return Err(e);
    }
    Ok((links, created))
}
