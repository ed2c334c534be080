//! The `xl` layer of the dom0 toolstack: the xl.cfg parser ([`config`]) and the
//! command line of the verbs ([`verb`]). `no_std` + `alloc`; host-tested with
//! `cargo test --target x86_64-unknown-linux-gnu -p xl` in `tests-qemu/`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod config;
pub mod verb;
