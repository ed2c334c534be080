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
