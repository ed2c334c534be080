//! `xen/include/public/event_channel.h`: `__HYPERVISOR_event_channel_op`, its
//! `EVTCHNOP_*` sub-ops and their argument structs, port states
//! (`EVTCHNSTAT_*`), and the FIFO ABI's event words and per-vCPU control block.
//!
//! With the project's `XEN_DOMCTL_CDF_evtchn_fifo` extension, a domain created
//! without that flag gets `-ENOSYS` from `EVTCHNOP_init_control`,
//! `EVTCHNOP_expand_array` and `EVTCHNOP_set_priority` (2-level ABI only).

use static_assertions::const_assert_eq;

use crate::xen::{domid_t, xen_ulong_t};

/// `evtchn_port_t`: an event-channel port number.
pub type evtchn_port_t = u32;

/// An event-channel port, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EvtchnPort(pub evtchn_port_t);

impl From<evtchn_port_t> for EvtchnPort {
    fn from(v: evtchn_port_t) -> Self {
        EvtchnPort(v)
    }
}

impl From<EvtchnPort> for evtchn_port_t {
    fn from(p: EvtchnPort) -> Self {
        p.0
    }
}

// ---- sub-op numbers --------------------------------------------------------------

/// `EVTCHNOP_bind_interdomain`: connect to a remote domain's unbound port.
pub const EVTCHNOP_bind_interdomain: u32 = 0;
/// `EVTCHNOP_bind_virq`: bind a virtual IRQ on a vCPU.
pub const EVTCHNOP_bind_virq: u32 = 1;
/// `EVTCHNOP_bind_pirq`: bind a physical IRQ.
pub const EVTCHNOP_bind_pirq: u32 = 2;
/// `EVTCHNOP_close`.
pub const EVTCHNOP_close: u32 = 3;
/// `EVTCHNOP_send`: notify the other end.
pub const EVTCHNOP_send: u32 = 4;
/// `EVTCHNOP_status`.
pub const EVTCHNOP_status: u32 = 5;
/// `EVTCHNOP_alloc_unbound`: allocate a port a remote domain may bind.
pub const EVTCHNOP_alloc_unbound: u32 = 6;
/// `EVTCHNOP_bind_ipi`: an intra-domain IPI channel.
pub const EVTCHNOP_bind_ipi: u32 = 7;
/// `EVTCHNOP_bind_vcpu`: change the vCPU a port notifies.
pub const EVTCHNOP_bind_vcpu: u32 = 8;
/// `EVTCHNOP_unmask`.
pub const EVTCHNOP_unmask: u32 = 9;
/// `EVTCHNOP_reset`: close all ports (and return to the 2-level ABI).
pub const EVTCHNOP_reset: u32 = 10;
/// `EVTCHNOP_init_control`: switch to the FIFO ABI, register a control block.
pub const EVTCHNOP_init_control: u32 = 11;
/// `EVTCHNOP_expand_array`: add a page of FIFO event words.
pub const EVTCHNOP_expand_array: u32 = 12;
/// `EVTCHNOP_set_priority`: set a port's FIFO priority.
pub const EVTCHNOP_set_priority: u32 = 13;
/// `EVTCHNOP_reset_cont`: continuation of a preempted `EVTCHNOP_reset`. The header
/// shows it to Xen only (`__XEN__`), but 4.17 accepts it from guests (it answers
/// `-EBUSY` when no reset is in progress).
pub const EVTCHNOP_reset_cont: u32 = 14;

// ---- argument structs ------------------------------------------------------------

abi_struct! {
    /// `struct evtchn_alloc_unbound` (`EVTCHNOP_alloc_unbound`).
    pub struct evtchn_alloc_unbound [size 8, align 4] {
        /// IN: the domain the port is allocated in (`DOMID_SELF` or, privileged, another).
        0 => dom: domid_t,
        /// IN: the domain allowed to bind it.
        2 => remote_dom: domid_t,
        /// OUT: the new port.
        4 => port: evtchn_port_t,
    }
}

abi_struct! {
    /// `struct evtchn_bind_interdomain` (`EVTCHNOP_bind_interdomain`).
    pub struct evtchn_bind_interdomain [size 12, align 4] {
        /// IN.
        0 => remote_dom: domid_t,
        2 => _implicit0: [u8; 2],
        /// IN: an unbound port of `remote_dom` that names us as `remote_dom`.
        4 => remote_port: evtchn_port_t,
        /// OUT.
        8 => local_port: evtchn_port_t,
    }
}

abi_struct! {
    /// `struct evtchn_bind_virq` (`EVTCHNOP_bind_virq`).
    pub struct evtchn_bind_virq [size 12, align 4] {
        /// IN: `VIRQ_*`.
        0 => virq: u32,
        /// IN.
        4 => vcpu: u32,
        /// OUT.
        8 => port: evtchn_port_t,
    }
}

/// `BIND_PIRQ__WILL_SHARE`: `evtchn_bind_pirq.flags`, the IRQ may be shared.
pub const BIND_PIRQ__WILL_SHARE: u32 = 1;

abi_struct! {
    /// `struct evtchn_bind_pirq` (`EVTCHNOP_bind_pirq`).
    pub struct evtchn_bind_pirq [size 12, align 4] {
        /// IN.
        0 => pirq: u32,
        /// IN: `BIND_PIRQ__*`.
        4 => flags: u32,
        /// OUT.
        8 => port: evtchn_port_t,
    }
}

abi_struct! {
    /// `struct evtchn_bind_ipi` (`EVTCHNOP_bind_ipi`).
    pub struct evtchn_bind_ipi [size 8, align 4] {
        /// IN.
        0 => vcpu: u32,
        /// OUT.
        4 => port: evtchn_port_t,
    }
}

abi_struct! {
    /// `struct evtchn_close` (`EVTCHNOP_close`).
    pub struct evtchn_close [size 4, align 4] {
        0 => port: evtchn_port_t,
    }
}

abi_struct! {
    /// `struct evtchn_send` (`EVTCHNOP_send`).
    pub struct evtchn_send [size 4, align 4] {
        0 => port: evtchn_port_t,
    }
}

/// `EVTCHNSTAT_closed`: the port is free.
pub const EVTCHNSTAT_closed: u32 = 0;
/// `EVTCHNSTAT_unbound`: waiting for `u.unbound.dom` to bind.
pub const EVTCHNSTAT_unbound: u32 = 1;
/// `EVTCHNSTAT_interdomain`: connected to `u.interdomain`.
pub const EVTCHNSTAT_interdomain: u32 = 2;
/// `EVTCHNSTAT_pirq`: bound to physical IRQ `u.pirq`.
pub const EVTCHNSTAT_pirq: u32 = 3;
/// `EVTCHNSTAT_virq`: bound to `u.virq`.
pub const EVTCHNSTAT_virq: u32 = 4;
/// `EVTCHNSTAT_ipi`: an IPI channel.
pub const EVTCHNSTAT_ipi: u32 = 5;

abi_struct! {
    /// `evtchn_status.u.unbound` (anonymous in C).
    pub struct evtchn_status_unbound [size 2, align 2] {
        /// The domain that may bind the port.
        0 => dom: domid_t,
    }
}

abi_struct! {
    /// `evtchn_status.u.interdomain` (anonymous in C).
    pub struct evtchn_status_interdomain [size 8, align 4] {
        0 => dom: domid_t,
        2 => _implicit0: [u8; 2],
        4 => port: evtchn_port_t,
    }
}

abi_union! {
    /// `evtchn_status.u` (anonymous in C): the binding, by `status`.
    pub union evtchn_status_u [size 8, align 4] as [u32; 2] {
        unbound: evtchn_status_unbound,
        interdomain: evtchn_status_interdomain,
        pirq: u32,
        virq: u32 as dup,
    }
}

abi_struct! {
    /// `struct evtchn_status` (`EVTCHNOP_status`).
    pub struct evtchn_status [size 24, align 4] {
        /// IN.
        0 => dom: domid_t,
        2 => _implicit0: [u8; 2],
        /// IN.
        4 => port: evtchn_port_t,
        /// OUT: `EVTCHNSTAT_*`.
        8 => status: u32,
        /// OUT: the vCPU the port notifies.
        12 => vcpu: u32,
        /// OUT.
        16 => u: evtchn_status_u,
    }
}

abi_struct! {
    /// `struct evtchn_bind_vcpu` (`EVTCHNOP_bind_vcpu`).
    pub struct evtchn_bind_vcpu [size 8, align 4] {
        0 => port: evtchn_port_t,
        4 => vcpu: u32,
    }
}

abi_struct! {
    /// `struct evtchn_unmask` (`EVTCHNOP_unmask`).
    pub struct evtchn_unmask [size 4, align 4] {
        0 => port: evtchn_port_t,
    }
}

abi_struct! {
    /// `struct evtchn_reset` (`EVTCHNOP_reset`).
    pub struct evtchn_reset [size 2, align 2] {
        0 => dom: domid_t,
    }
}

abi_struct! {
    /// `struct evtchn_init_control` (`EVTCHNOP_init_control`).
    pub struct evtchn_init_control [size 24, align 8] {
        /// IN: frame of the page holding the control block.
        0 => control_gfn: u64,
        /// IN: offset of the control block in that page.
        8 => offset: u32,
        /// IN: the vCPU whose control block this is.
        12 => vcpu: u32,
        /// OUT: `EVTCHN_FIFO_LINK_BITS`.
        16 => link_bits: u8,
        17 => _pad: [u8; 7],
    }
}

abi_struct! {
    /// `struct evtchn_expand_array` (`EVTCHNOP_expand_array`).
    pub struct evtchn_expand_array [size 8, align 8] {
        /// IN: frame of a page of event words.
        0 => array_gfn: u64,
    }
}

abi_struct! {
    /// `struct evtchn_set_priority` (`EVTCHNOP_set_priority`).
    pub struct evtchn_set_priority [size 8, align 4] {
        0 => port: evtchn_port_t,
        /// 0 (`EVTCHN_FIFO_PRIORITY_MAX`, highest) ..= 15 (`_MIN`).
        4 => priority: u32,
    }
}

abi_union! {
    /// `evtchn_op.u` (anonymous in C).
    pub union evtchn_op_u [size 24, align 4] as [u32; 6] {
        alloc_unbound: evtchn_alloc_unbound,
        bind_interdomain: evtchn_bind_interdomain,
        bind_virq: evtchn_bind_virq,
        bind_pirq: evtchn_bind_pirq,
        bind_ipi: evtchn_bind_ipi,
        close: evtchn_close,
        send: evtchn_send,
        status: evtchn_status,
        bind_vcpu: evtchn_bind_vcpu,
        unmask: evtchn_unmask,
    }
}

abi_struct! {
    /// `struct evtchn_op`: the argument of the obsolete
    /// `__HYPERVISOR_event_channel_op_compat`.
    pub struct evtchn_op [size 28, align 4] {
        0 => cmd: u32,
        4 => u: evtchn_op_u,
    }
}

// ---- 2-level ABI ---------------------------------------------------------------

/// `EVTCHN_2L_NR_CHANNELS`: ports of the 2-level ABI (bits in `shared_info`).
pub const EVTCHN_2L_NR_CHANNELS: u32 =
    (core::mem::size_of::<xen_ulong_t>() * core::mem::size_of::<xen_ulong_t>() * 64) as u32;
const_assert_eq!(EVTCHN_2L_NR_CHANNELS, 4096);

// ---- FIFO ABI --------------------------------------------------------------------

/// `EVTCHN_FIFO_PRIORITY_MAX`: the highest priority.
pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
/// `EVTCHN_FIFO_PRIORITY_DEFAULT`.
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
/// `EVTCHN_FIFO_PRIORITY_MIN`: the lowest priority.
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
/// `EVTCHN_FIFO_MAX_QUEUES`: one queue per priority.
pub const EVTCHN_FIFO_MAX_QUEUES: u32 = EVTCHN_FIFO_PRIORITY_MIN + 1;

/// `event_word_t`: a FIFO port's event word (flag bits + link to the next port).
pub type event_word_t = u32;

/// `EVTCHN_FIFO_PENDING`: bit number of PENDING in an event word.
pub const EVTCHN_FIFO_PENDING: u32 = 31;
/// `EVTCHN_FIFO_MASKED`: bit number of MASKED.
pub const EVTCHN_FIFO_MASKED: u32 = 30;
/// `EVTCHN_FIFO_LINKED`: bit number of LINKED (the word is on a queue).
pub const EVTCHN_FIFO_LINKED: u32 = 29;
/// `EVTCHN_FIFO_BUSY`: bit number of BUSY (Xen is updating the LINK field).
pub const EVTCHN_FIFO_BUSY: u32 = 28;
/// `EVTCHN_FIFO_LINK_BITS`: width of the LINK field (low bits of the word).
pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
/// `EVTCHN_FIFO_LINK_MASK`.
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
/// `EVTCHN_FIFO_NR_CHANNELS`: ports of the FIFO ABI.
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;

// The flag bits sit above the link field and do not overlap it.
const_assert_eq!(EVTCHN_FIFO_LINK_MASK, 0x1ffff);
const_assert_eq!(EVTCHN_FIFO_NR_CHANNELS, 0x20000);
static_assertions::const_assert!(EVTCHN_FIFO_BUSY >= EVTCHN_FIFO_LINK_BITS);

abi_struct! {
    /// `struct evtchn_fifo_control_block`: a vCPU's FIFO control block, in guest
    /// memory registered by `EVTCHNOP_init_control`.
    pub struct evtchn_fifo_control_block [size 72, align 4] {
        /// Bit `q` set: queue `q` is non-empty.
        0 => ready: u32,
        4 => _rsvd: u32,
        /// Head port of each priority queue.
        8 => head: [u32; 16],
    }
}
const_assert_eq!(EVTCHN_FIFO_MAX_QUEUES, 16);

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn status_union_members() {
        let mut st = evtchn_status::new_zeroed();
        st.status = EVTCHNSTAT_interdomain;
        st.u.set(&evtchn_status_interdomain {
            dom: 1,
            _implicit0: [0; 2],
            port: 5,
        });
        assert_eq!(st.u.get::<evtchn_status_interdomain>().port, 5);
        st.u.set(&9u32);
        assert_eq!(st.u.get::<u32>(), 9);
        assert_eq!(st.u.get::<evtchn_status_interdomain>().port, 0);
    }
}
