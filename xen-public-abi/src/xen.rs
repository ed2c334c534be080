//! `xen/include/public/xen.h`: domain ids and the core types (more to come).

/// `domid_t`.
pub type domid_t = u16;

pub const DOMID_FIRST_RESERVED: domid_t = 0x7FF0;
pub const DOMID_SELF: domid_t = 0x7FF0;
pub const DOMID_IO: domid_t = 0x7FF1;
pub const DOMID_XEN: domid_t = 0x7FF2;
pub const DOMID_COW: domid_t = 0x7FF3;
pub const DOMID_INVALID: domid_t = 0x7FF4;
pub const DOMID_IDLE: domid_t = 0x7FFF;
pub const DOMID_MASK: domid_t = 0x7FFF;

/// A domain id, typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DomId(pub domid_t);

impl DomId {
    pub const SELF: DomId = DomId(DOMID_SELF);
    pub const INVALID: DomId = DomId(DOMID_INVALID);

    /// True for ids a real domain can have (below `DOMID_FIRST_RESERVED`).
    pub const fn is_normal(self) -> bool {
        self.0 < DOMID_FIRST_RESERVED
    }
}

// VIRQs (`VIRQ_*`): "V." per-vCPU, "G." global.
pub const VIRQ_TIMER: u32 = 0;
pub const VIRQ_DEBUG: u32 = 1;
pub const VIRQ_CONSOLE: u32 = 2;
pub const VIRQ_DOM_EXC: u32 = 3;
pub const VIRQ_TBUF: u32 = 4;
pub const VIRQ_DEBUGGER: u32 = 6;
pub const VIRQ_XENOPROF: u32 = 7;
pub const VIRQ_CON_RING: u32 = 8;
pub const VIRQ_PCPU_STATE: u32 = 9;
pub const VIRQ_MEM_EVENT: u32 = 10;
pub const VIRQ_ARGO: u32 = 11;
pub const VIRQ_ENOMEM: u32 = 12;
pub const VIRQ_XENPMU: u32 = 13;
pub const VIRQ_ARCH_0: u32 = 16;
pub const VIRQ_ARCH_7: u32 = 23;
/// `NR_VIRQS`.
pub const NR_VIRQS: u32 = 24;
