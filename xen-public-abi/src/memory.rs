//! `xen/include/public/memory.h` (Xen 4.17): so far only `xenmem_access_t`.

/// `xenmem_access_t` (4.17 numbering: there is no `r_pw`, so `default` is 10).
pub type xenmem_access_t = u32;
pub const XENMEM_access_n: xenmem_access_t = 0;
pub const XENMEM_access_r: xenmem_access_t = 1;
pub const XENMEM_access_w: xenmem_access_t = 2;
pub const XENMEM_access_rw: xenmem_access_t = 3;
pub const XENMEM_access_x: xenmem_access_t = 4;
pub const XENMEM_access_rx: xenmem_access_t = 5;
pub const XENMEM_access_wx: xenmem_access_t = 6;
pub const XENMEM_access_rwx: xenmem_access_t = 7;
/// Read-execute, upgraded to read-write automatically on the first write.
pub const XENMEM_access_rx2rw: xenmem_access_t = 8;
/// No access; on the first access the page becomes rwx and one event is sent.
pub const XENMEM_access_n2rwx: xenmem_access_t = 9;
/// The view's default access.
pub const XENMEM_access_default: xenmem_access_t = 10;
