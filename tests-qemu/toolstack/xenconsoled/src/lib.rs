//! The console backend of the dom0 toolstack: what Xen's `xenconsoled`
//! (`tools/console/daemon/io.c`) does for each domain, without the pty.
//!
//! A domain's console is one page, `struct xencons_interface`
//! (`io/console.h`, gfn `HVM_PARAM_CONSOLE_PFN`), and one event channel
//! (`HVM_PARAM_CONSOLE_EVTCHN`, bound interdomain by dom0). The guest produces
//! into `out` and consumes from `in`; the backend does the opposite. The
//! indices run freely (`u32`, wrapping) and are reduced modulo the ring size.
//!
//! The page is the guest's: every index read from it is untrusted. As in
//! `buffer_append()` and `ring_free_bytes()`, a ring whose producer is more
//! than a ring's length ahead of its consumer is "screwed": nothing is read
//! from it or written to it (the domain loses only its own console), and no
//! loop here depends on a guest value beyond the ring's length.
//!
//! [`ring`] has the index arithmetic over a [`ConsolePage`] (the mapped page in
//! dom0, a byte array in the host tests); [`Relay`] turns the output into
//! lines prefixed with the domain (`[name] text`) for dom0's console.
#![no_std]

extern crate alloc;

pub mod relay;
pub mod ring;

pub use relay::Relay;
pub use ring::{read_output, write_input, ConsolePage, RingError};
