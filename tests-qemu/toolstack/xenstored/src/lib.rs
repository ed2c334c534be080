//! xenstored for the dom0 toolstack: the daemon Xen's `tools/xenstore/` is,
//! written for this project (`no_std` + `alloc`, host-tested with
//! `cargo test --target x86_64-unknown-linux-gnu -p xenstored` in `tests-qemu/`).
//!
//! - [`wire`]: `io/xs_wire.h` messages and the errno names of `XS_ERROR`;
//! - [`ring`]: the `xenstore_domain_interface` byte rings and their checks;
//! - [`perms`]: Xen's node permissions (`n`/`r`/`w`/`b`, owner first);
//! - [`store`]: the tree of nodes, path rules, per-domain node accounting;
//! - [`transaction`]: per-connection transactions with conflict detection;
//! - [`watch`]: watches and the special `@introduceDomain`/`@releaseDomain`;
//! - [`quota`]: the limits one domain is held to;
//! - `node_ops`: the node requests (read, write, mkdir, rm, permissions);
//! - `connection`: a domain connection's ring I/O and closing it;
//! - `control`: `XS_CONTROL`;
//! - [`daemon`]: connections (one per introduced domain, plus dom0's local
//!   ones) and the request handlers, one per message type.
//!
//! What the toolstack writes for a domain (libxl's layout) is in `layout`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod connection;
mod control;
pub mod daemon;
pub mod layout;
mod node_ops;
pub mod perms;
pub mod quota;
pub mod ring;
pub mod store;
pub mod transaction;
pub mod watch;
pub mod wire;

pub use daemon::{ConnId, Platform, Xenstored};
pub use wire::XsErr;
