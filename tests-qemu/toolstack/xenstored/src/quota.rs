//! The limits xenstored holds unprivileged domains to (Xen 4.17's defaults,
//! `xenstored_core.c`), so that one domain cannot exhaust dom0's memory.
//! Privileged connections are exempt, as in Xen.

/// The quotas.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Nodes a domain may own (`quota_nb_entry_per_domain`): `ENOSPC`.
    pub nodes_per_domain: u32,
    /// Bytes of one node record (`quota_max_entry_size`): `ENOSPC` at or above.
    pub node_size: usize,
    /// Watches per connection (`quota_nb_watch_per_domain`): `E2BIG`.
    pub watches: u32,
    /// Transactions open at once (`quota_max_transaction`): `ENOSPC`.
    pub transactions: u32,
    /// Nodes one transaction may touch (`quota_trans_nodes`): `ENOSPC`.
    pub transaction_nodes: u32,
    /// Permission entries per node (`quota_nb_perms_per_node`): `ENOSPC`.
    pub perms_per_node: usize,
    /// Replies and events a domain may have waiting to be read
    /// (`quota_req_outstanding`): its requests wait until it reads them.
    pub outstanding: u32,
    /// Bytes of watch events queued for one connection; beyond it events are
    /// dropped (C xenstored charges them to a memory quota instead).
    pub event_bytes: usize,
}

impl Default for Quota {
    fn default() -> Quota {
        Quota {
            nodes_per_domain: 1000,
            node_size: 2048,
            watches: 128,
            transactions: 10,
            transaction_nodes: 1024,
            perms_per_node: 5,
            outstanding: 20,
            event_bytes: 64 * 1024,
        }
    }
}
