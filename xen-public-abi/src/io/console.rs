//! `xen/include/public/io/console.h`: the PV console ring shared between a
//! domain and its console backend (`HVM_PARAM_CONSOLE_PFN`/`_EVTCHN`).
//!
//! `in` carries backend-to-guest bytes, `out` guest-to-backend bytes; the
//! indices run freely and are reduced with [`MASK_XENCONS_IDX`].

/// `XENCONS_RING_IDX`.
pub type XENCONS_RING_IDX = u32;

abi_struct! {
    /// `struct xencons_interface`: the console page.
    pub struct xencons_interface [size 3088, align 4] {
        /// Backend to guest.
        0 => r#in: [u8; 1024],
        /// Guest to backend.
        1024 => out: [u8; 2048],
        3072 => in_cons: XENCONS_RING_IDX,
        3076 => in_prod: XENCONS_RING_IDX,
        3080 => out_cons: XENCONS_RING_IDX,
        3084 => out_prod: XENCONS_RING_IDX,
    }
}

/// `MASK_XENCONS_IDX(idx, ring)`: reduce a free-running index to a position in a
/// ring of `ring_len` bytes (a power of two: 1024 for `in`, 2048 for `out`).
pub const fn MASK_XENCONS_IDX(idx: XENCONS_RING_IDX, ring_len: usize) -> usize {
    (idx as usize) & (ring_len - 1)
}
