//! The xenstore wire format (`io/xs_wire.h`): a 16-byte [`xsd_sockmsg`] header,
//! then `len` (≤ `XENSTORE_PAYLOAD_MAX`) bytes of payload, usually
//! NUL-terminated strings. Errors travel as `XS_ERROR` with the errno *name*.

use alloc::string::String;
use alloc::vec::Vec;
use xen_public_abi::io::xs_wire::*;
use zerocopy::{FromBytes, IntoBytes};

/// Header size on the wire.
pub const HDR: usize = core::mem::size_of::<xsd_sockmsg>();

/// The errors xenstored replies with (`xsd_errors[]`'s names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XsErr {
    EINVAL,
    EACCES,
    EEXIST,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    EAGAIN,
    EISCONN,
    E2BIG,
    EPERM,
}

impl XsErr {
    /// The name sent in an `XS_ERROR` payload (without the NUL).
    pub fn name(self) -> &'static str {
        XSD_ERRORS[self as usize].1
    }
    /// The Linux errno value (what C xenstored's `errnum` is).
    pub fn errno(self) -> i32 {
        XSD_ERRORS[self as usize].0
    }
    /// From an errno name, as a client decodes an `XS_ERROR` reply.
    pub fn from_name(name: &str) -> Option<XsErr> {
        use XsErr::*;
        const ALL: [XsErr; 16] = [
            EINVAL, EACCES, EEXIST, EISDIR, ENOENT, ENOMEM, ENOSPC, EIO, ENOTEMPTY, ENOSYS, EROFS,
            EBUSY, EAGAIN, EISCONN, E2BIG, EPERM,
        ];
        ALL.into_iter().find(|e| e.name() == name)
    }
}

impl core::fmt::Display for XsErr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One message (request, reply or watch event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub ty: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

impl Msg {
    pub fn new(ty: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Msg {
        Msg {
            ty,
            req_id,
            tx_id,
            payload: payload.to_vec(),
        }
    }

    /// Header followed by payload, as written into a ring.
    pub fn encode(&self) -> Vec<u8> {
        let h = xsd_sockmsg {
            r#type: self.ty,
            req_id: self.req_id,
            tx_id: self.tx_id,
            len: self.payload.len() as u32,
        };
        let mut v = Vec::with_capacity(HDR + self.payload.len());
        v.extend_from_slice(h.as_bytes());
        v.extend_from_slice(&self.payload);
        v
    }

    /// An error reply to `req`.
    pub fn error(req: &Msg, e: XsErr) -> Msg {
        Msg::new(XS_ERROR, req.req_id, req.tx_id, &cstr(e.name()))
    }

    /// For a reply: `Err` with the errno if it is `XS_ERROR`.
    pub fn result(&self) -> Result<&[u8], XsErr> {
        if self.ty == XS_ERROR {
            let name = self.payload.strip_suffix(b"\0").unwrap_or(&self.payload);
            Err(core::str::from_utf8(name)
                .ok()
                .and_then(XsErr::from_name)
                .unwrap_or(XsErr::EINVAL))
        } else {
            Ok(&self.payload)
        }
    }
}

/// Decode a header. `None` if shorter than [`HDR`].
pub fn header(bytes: &[u8]) -> Option<xsd_sockmsg> {
    xsd_sockmsg::read_from_prefix(bytes).ok().map(|(h, _)| h)
}

/// `s` followed by a NUL.
pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(s.len() + 1);
    v.extend_from_slice(s.as_bytes());
    v.push(0);
    v
}

/// Strings joined with NULs, each terminated.
pub fn cstrs(parts: &[&str]) -> Vec<u8> {
    let mut v = Vec::new();
    for p in parts {
        v.extend_from_slice(p.as_bytes());
        v.push(0);
    }
    v
}

/// The NUL-terminated strings of a payload. `None` if the payload does not end
/// with a NUL (an unterminated string) or a string is not UTF-8.
pub fn strings(payload: &[u8]) -> Option<Vec<&str>> {
    let body = payload.strip_suffix(b"\0")?;
    body.split(|&b| b == 0)
        .map(|s| core::str::from_utf8(s).ok())
        .collect()
}

/// The name of a message type (for log lines).
pub fn type_name(ty: u32) -> &'static str {
    const NAMES: [&str; XS_TYPE_COUNT as usize] = [
        "CONTROL",
        "DIRECTORY",
        "READ",
        "GET_PERMS",
        "WATCH",
        "UNWATCH",
        "TRANSACTION_START",
        "TRANSACTION_END",
        "INTRODUCE",
        "RELEASE",
        "GET_DOMAIN_PATH",
        "WRITE",
        "MKDIR",
        "RM",
        "SET_PERMS",
        "WATCH_EVENT",
        "ERROR",
        "IS_DOMAIN_INTRODUCED",
        "RESUME",
        "SET_TARGET",
        "(removed RESTRICT)",
        "RESET_WATCHES",
        "DIRECTORY_PART",
    ];
    NAMES.get(ty as usize).copied().unwrap_or("(invalid)")
}

/// A decimal number as C's `atoi` would read the whole string, but strictly:
/// digits only, no overflow.
pub fn number(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Format a number.
pub fn decimal(n: u64) -> String {
    alloc::format!("{n}")
}
