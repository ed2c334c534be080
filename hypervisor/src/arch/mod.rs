//! Architecture-specific code. Only x86-64 exists; it is compiled for the bare-metal
//! target (`target_os = "none"`) only, so host builds and tests never see it.

pub mod x86_64;
