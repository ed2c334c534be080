//! `xen/include/public/io/xs_wire.h`: the xenstore wire protocol.
//!
//! A message is an [`xsd_sockmsg`] header followed by `len` bytes of payload
//! (usually NUL-terminated strings). Between a domain and xenstored the messages
//! travel through the [`xenstore_domain_interface`] page (`HVM_PARAM_STORE_PFN`),
//! two 1 KiB byte rings with free-running indices reduced by [`MASK_XENSTORE_IDX`],
//! and the store event channel (`HVM_PARAM_STORE_EVTCHN`). Errors are sent back as
//! an `XS_ERROR` reply whose payload is the errno *name* (`"EACCES"`), one of
//! [`XSD_ERRORS`].

/// `enum xsd_sockmsg_type` values. `XS_CONTROL` (also `XS_DEBUG`).
pub const XS_CONTROL: u32 = 0;
/// `XS_DEBUG`: the old name of `XS_CONTROL`.
pub const XS_DEBUG: u32 = XS_CONTROL;
/// `XS_DIRECTORY`: list a node's children.
pub const XS_DIRECTORY: u32 = 1;
/// `XS_READ`: read a node's value.
pub const XS_READ: u32 = 2;
/// `XS_GET_PERMS`: read a node's permissions.
pub const XS_GET_PERMS: u32 = 3;
/// `XS_WATCH`: register a watch (path, token).
pub const XS_WATCH: u32 = 4;
/// `XS_UNWATCH`: remove a watch (path, token).
pub const XS_UNWATCH: u32 = 5;
/// `XS_TRANSACTION_START`.
pub const XS_TRANSACTION_START: u32 = 6;
/// `XS_TRANSACTION_END` ("T" commit, "F" abort).
pub const XS_TRANSACTION_END: u32 = 7;
/// `XS_INTRODUCE` (domid, mfn, port): connect a domain's ring.
pub const XS_INTRODUCE: u32 = 8;
/// `XS_RELEASE` (domid): forget a domain.
pub const XS_RELEASE: u32 = 9;
/// `XS_GET_DOMAIN_PATH` (domid): `/local/domain/<domid>`.
pub const XS_GET_DOMAIN_PATH: u32 = 10;
/// `XS_WRITE` (path, value).
pub const XS_WRITE: u32 = 11;
/// `XS_MKDIR` (path).
pub const XS_MKDIR: u32 = 12;
/// `XS_RM` (path): remove a node and its subtree.
pub const XS_RM: u32 = 13;
/// `XS_SET_PERMS` (path, perms...).
pub const XS_SET_PERMS: u32 = 14;
/// `XS_WATCH_EVENT`: asynchronous watch firing (path, token).
pub const XS_WATCH_EVENT: u32 = 15;
/// `XS_ERROR`: error reply, the payload is the errno name.
pub const XS_ERROR: u32 = 16;
/// `XS_IS_DOMAIN_INTRODUCED` (domid): "T" or "F".
pub const XS_IS_DOMAIN_INTRODUCED: u32 = 17;
/// `XS_RESUME` (domid).
pub const XS_RESUME: u32 = 18;
/// `XS_SET_TARGET` (domid, target): a device model's target domain.
pub const XS_SET_TARGET: u32 = 19;
/// `XS_RESET_WATCHES`: drop all the caller's watches and transactions.
pub const XS_RESET_WATCHES: u32 = XS_SET_TARGET + 2;
/// `XS_DIRECTORY_PART` (path, offset): a directory listing in parts.
pub const XS_DIRECTORY_PART: u32 = 22;
/// `XS_TYPE_COUNT`: number of valid types.
pub const XS_TYPE_COUNT: u32 = 23;
/// `XS_INVALID`: guaranteed never to be a valid type.
pub const XS_INVALID: u32 = 0xffff;

/// `enum xs_watch_type`: index of the path in an `XS_WATCH_EVENT` payload.
pub const XS_WATCH_PATH: u32 = 0;
/// `XS_WATCH_TOKEN`: index of the token in an `XS_WATCH_EVENT` payload.
pub const XS_WATCH_TOKEN: u32 = 1;

/// The errno names an `XS_ERROR` reply may carry, in `xsd_errors[]`'s order,
/// with their Linux values (the values Xen's C xenstored sends as names).
pub const XSD_ERRORS: [(i32, &str); 16] = [
    (22, "EINVAL"),
    (13, "EACCES"),
    (17, "EEXIST"),
    (21, "EISDIR"),
    (2, "ENOENT"),
    (12, "ENOMEM"),
    (28, "ENOSPC"),
    (5, "EIO"),
    (39, "ENOTEMPTY"),
    (38, "ENOSYS"),
    (30, "EROFS"),
    (16, "EBUSY"),
    (11, "EAGAIN"),
    (106, "EISCONN"),
    (7, "E2BIG"),
    (1, "EPERM"),
];

abi_struct! {
    /// `struct xsd_sockmsg`: the header in front of every message.
    pub struct xsd_sockmsg [size 16, align 4] {
        /// `XS_*`.
        0 => r#type: u32,
        /// Request identifier, echoed in the reply.
        4 => req_id: u32,
        /// Transaction id (0: none).
        8 => tx_id: u32,
        /// Payload bytes following the header.
        12 => len: u32,
    }
}

/// `XENSTORE_RING_SIZE`: bytes in each of the two rings.
pub const XENSTORE_RING_SIZE: usize = 1024;
/// `XENSTORE_RING_IDX`: a free-running ring index.
pub type XENSTORE_RING_IDX = u32;

/// `MASK_XENSTORE_IDX(idx)`: reduce a free-running index to a ring position.
pub const fn MASK_XENSTORE_IDX(idx: XENSTORE_RING_IDX) -> usize {
    (idx as usize) & (XENSTORE_RING_SIZE - 1)
}

abi_struct! {
    /// `struct xenstore_domain_interface`: the store page.
    pub struct xenstore_domain_interface [size 2076, align 4] {
        /// Requests to xenstored.
        0 => req: [u8; 1024],
        /// Replies and watch events.
        1024 => rsp: [u8; 1024],
        2048 => req_cons: XENSTORE_RING_IDX,
        2052 => req_prod: XENSTORE_RING_IDX,
        2056 => rsp_cons: XENSTORE_RING_IDX,
        2060 => rsp_prod: XENSTORE_RING_IDX,
        /// `XENSTORE_SERVER_FEATURE_*` the server supports.
        2064 => server_features: u32,
        /// `XENSTORE_CONNECTED` / `XENSTORE_RECONNECT`.
        2068 => connection: u32,
        /// `XENSTORE_ERROR_*`.
        2072 => error: u32,
    }
}

/// `XENSTORE_PAYLOAD_MAX`: a longer payload is a protocol violation.
pub const XENSTORE_PAYLOAD_MAX: u32 = 4096;
/// `XENSTORE_ABS_PATH_MAX`: longest absolute path (else `EINVAL`).
pub const XENSTORE_ABS_PATH_MAX: u32 = 3072;
/// `XENSTORE_REL_PATH_MAX`: longest relative path (else `EINVAL`).
pub const XENSTORE_REL_PATH_MAX: u32 = 2048;
/// `XENSTORE_SERVER_FEATURE_RECONNECTION`.
pub const XENSTORE_SERVER_FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`: the `error` field is present.
pub const XENSTORE_SERVER_FEATURE_ERROR: u32 = 2;
/// `XENSTORE_CONNECTED`: the steady state.
pub const XENSTORE_CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`: a reconnection is in progress.
pub const XENSTORE_RECONNECT: u32 = 1;
/// `XENSTORE_ERROR_NONE`.
pub const XENSTORE_ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`: communication problem.
pub const XENSTORE_ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`: invalid ring index.
pub const XENSTORE_ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`: protocol violation (payload too long).
pub const XENSTORE_ERROR_PROTO: u32 = 3;
