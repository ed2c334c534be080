//! `xen/include/public/event_channel.h`: `EVTCHNOP_*` op numbers, their argument
//! structs, and the FIFO ABI's constants and control block (Xen 4.17).
//!
//! Layouts are the gcc x86_64 ones (checked below with `static_assertions`).
//! C's anonymous padding is spelled out as `_pad*` fields so the structs can
//! derive zerocopy's `IntoBytes`.

use crate::xen::domid_t;
use static_assertions::{assert_eq_size, const_assert_eq};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `evtchn_port_t`.
pub type evtchn_port_t = u32;

pub const EVTCHNOP_bind_interdomain: u32 = 0;
pub const EVTCHNOP_bind_virq: u32 = 1;
pub const EVTCHNOP_bind_pirq: u32 = 2;
pub const EVTCHNOP_close: u32 = 3;
pub const EVTCHNOP_send: u32 = 4;
pub const EVTCHNOP_status: u32 = 5;
pub const EVTCHNOP_alloc_unbound: u32 = 6;
pub const EVTCHNOP_bind_ipi: u32 = 7;
pub const EVTCHNOP_bind_vcpu: u32 = 8;
pub const EVTCHNOP_unmask: u32 = 9;
pub const EVTCHNOP_reset: u32 = 10;
pub const EVTCHNOP_init_control: u32 = 11;
pub const EVTCHNOP_expand_array: u32 = 12;
pub const EVTCHNOP_set_priority: u32 = 13;
/// `#ifdef __XEN__` in the header, but Xen's dispatcher accepts it from guests.
pub const EVTCHNOP_reset_cont: u32 = 14;

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_alloc_unbound {
    pub dom: domid_t,
    pub remote_dom: domid_t,
    pub port: evtchn_port_t,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_bind_interdomain {
    pub remote_dom: domid_t,
    pub _pad0: u16,
    pub remote_port: evtchn_port_t,
    pub local_port: evtchn_port_t,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_bind_virq {
    pub virq: u32,
    pub vcpu: u32,
    pub port: evtchn_port_t,
}

pub const BIND_PIRQ__WILL_SHARE: u32 = 1;

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_bind_pirq {
    pub pirq: u32,
    pub flags: u32,
    pub port: evtchn_port_t,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_bind_ipi {
    pub vcpu: u32,
    pub port: evtchn_port_t,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_close {
    pub port: evtchn_port_t,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_send {
    pub port: evtchn_port_t,
}

pub const EVTCHNSTAT_closed: u32 = 0;
pub const EVTCHNSTAT_unbound: u32 = 1;
pub const EVTCHNSTAT_interdomain: u32 = 2;
pub const EVTCHNSTAT_pirq: u32 = 3;
pub const EVTCHNSTAT_virq: u32 = 4;
pub const EVTCHNSTAT_ipi: u32 = 5;

/// `struct evtchn_status`. The C union `u` (8 bytes at offset 16) is kept as raw
/// bytes; the accessors below read and write its members.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_status {
    pub dom: domid_t,
    pub _pad0: u16,
    pub port: evtchn_port_t,
    pub status: u32,
    pub vcpu: u32,
    pub u: [u8; 8],
}

impl evtchn_status {
    fn u32_at(&self, off: usize) -> u32 {
        u32::from_le_bytes([
            self.u[off],
            self.u[off + 1],
            self.u[off + 2],
            self.u[off + 3],
        ])
    }
    /// `u.unbound.dom` / `u.interdomain.dom`.
    pub fn u_dom(&self) -> domid_t {
        u16::from_le_bytes([self.u[0], self.u[1]])
    }
    /// `u.interdomain.port`.
    pub fn u_interdomain_port(&self) -> evtchn_port_t {
        self.u32_at(4)
    }
    /// `u.virq` / `u.pirq`.
    pub fn u_u32(&self) -> u32 {
        self.u32_at(0)
    }
    /// Set `u.unbound.dom`.
    pub fn set_unbound(&mut self, dom: domid_t) {
        self.u = [0; 8];
        self.u[0..2].copy_from_slice(&dom.to_le_bytes());
    }
    /// Set `u.interdomain`.
    pub fn set_interdomain(&mut self, dom: domid_t, port: evtchn_port_t) {
        self.u = [0; 8];
        self.u[0..2].copy_from_slice(&dom.to_le_bytes());
        self.u[4..8].copy_from_slice(&port.to_le_bytes());
    }
    /// Set `u.virq` or `u.pirq`.
    pub fn set_u32(&mut self, v: u32) {
        self.u = [0; 8];
        self.u[0..4].copy_from_slice(&v.to_le_bytes());
    }
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_bind_vcpu {
    pub port: evtchn_port_t,
    pub vcpu: u32,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_unmask {
    pub port: evtchn_port_t,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_reset {
    pub dom: domid_t,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_init_control {
    pub control_gfn: u64,
    pub offset: u32,
    pub vcpu: u32,
    pub link_bits: u8,
    pub _pad: [u8; 7],
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_expand_array {
    pub array_gfn: u64,
}

#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_set_priority {
    pub port: evtchn_port_t,
    pub priority: u32,
}

// FIFO-based event channel ABI.

/// `event_word_t`.
pub type event_word_t = u32;

pub const EVTCHN_FIFO_PRIORITY_MAX: u32 = 0;
pub const EVTCHN_FIFO_PRIORITY_DEFAULT: u32 = 7;
pub const EVTCHN_FIFO_PRIORITY_MIN: u32 = 15;
pub const EVTCHN_FIFO_MAX_QUEUES: u32 = EVTCHN_FIFO_PRIORITY_MIN + 1;

pub const EVTCHN_FIFO_PENDING: u32 = 31;
pub const EVTCHN_FIFO_MASKED: u32 = 30;
pub const EVTCHN_FIFO_LINKED: u32 = 29;
pub const EVTCHN_FIFO_BUSY: u32 = 28;

pub const EVTCHN_FIFO_LINK_BITS: u32 = 17;
pub const EVTCHN_FIFO_LINK_MASK: u32 = (1 << EVTCHN_FIFO_LINK_BITS) - 1;
pub const EVTCHN_FIFO_NR_CHANNELS: u32 = 1 << EVTCHN_FIFO_LINK_BITS;

/// `struct evtchn_fifo_control_block`: per-vCPU, in a guest page.
#[repr(C)]
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
pub struct evtchn_fifo_control_block {
    pub ready: u32,
    pub _rsvd: u32,
    pub head: [u32; EVTCHN_FIFO_MAX_QUEUES as usize],
}

assert_eq_size!(evtchn_alloc_unbound, [u8; 8]);
assert_eq_size!(evtchn_bind_interdomain, [u8; 12]);
assert_eq_size!(evtchn_bind_virq, [u8; 12]);
assert_eq_size!(evtchn_bind_pirq, [u8; 12]);
assert_eq_size!(evtchn_bind_ipi, [u8; 8]);
assert_eq_size!(evtchn_close, [u8; 4]);
assert_eq_size!(evtchn_send, [u8; 4]);
assert_eq_size!(evtchn_status, [u8; 24]);
assert_eq_size!(evtchn_bind_vcpu, [u8; 8]);
assert_eq_size!(evtchn_unmask, [u8; 4]);
assert_eq_size!(evtchn_reset, [u8; 2]);
assert_eq_size!(evtchn_init_control, [u8; 24]);
assert_eq_size!(evtchn_expand_array, [u8; 8]);
assert_eq_size!(evtchn_set_priority, [u8; 8]);
assert_eq_size!(evtchn_fifo_control_block, [u8; 72]);
const_assert_eq!(
    core::mem::offset_of!(evtchn_bind_interdomain, remote_port),
    4
);
const_assert_eq!(core::mem::offset_of!(evtchn_status, port), 4);
const_assert_eq!(core::mem::offset_of!(evtchn_status, u), 16);
const_assert_eq!(core::mem::offset_of!(evtchn_init_control, link_bits), 16);
const_assert_eq!(core::mem::offset_of!(evtchn_fifo_control_block, head), 8);
const_assert_eq!(EVTCHN_FIFO_NR_CHANNELS, 131072);
