//! Event-channel upcall delivery and the minimal local APIC. (Being written.)
