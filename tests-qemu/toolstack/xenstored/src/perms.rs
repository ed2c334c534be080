//! Xen's node permissions (`xenstored_core.c: perm_for_conn`, docs/misc/xenstore.txt).
//!
//! A node carries a list of `(access, domid)` entries written `r5`, `w0`, `b3`,
//! `n2`. The first entry names the owner and the access everyone not listed
//! gets; later entries give one domain its access. Privileged connections
//! (dom0), the owner, and a connection whose target (`XS_SET_TARGET`) is the
//! owner have full access, including the right to change permissions.

use alloc::string::String;
use alloc::vec::Vec;

use crate::wire::XsErr;

/// The access one entry grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `n`: nothing.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: read and write.
    Both,
}

impl Access {
    pub fn letter(self) -> char {
        match self {
            Access::None => 'n',
            Access::Read => 'r',
            Access::Write => 'w',
            Access::Both => 'b',
        }
    }
    fn from_letter(c: u8) -> Option<Access> {
        Some(match c {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return None,
        })
    }
    pub fn read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }
    pub fn write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One entry: access for a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    pub access: Access,
    pub domid: u16,
}

/// A node's permission list; never empty (the first entry is the owner's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Perms(Vec<Entry>);

/// What a connection may do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Rights {
    pub read: bool,
    pub write: bool,
    /// May change the permissions (`XS_PERM_OWNER`).
    pub owner: bool,
}

impl Rights {
    pub const ALL: Rights = Rights {
        read: true,
        write: true,
        owner: true,
    };
}

/// Who is asking: a domain, whether it is privileged, and its target domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub domid: u16,
    pub privileged: bool,
    pub target: Option<u16>,
}

impl Caller {
    pub fn dom0() -> Caller {
        Caller {
            domid: 0,
            privileged: true,
            target: None,
        }
    }
    pub fn domu(domid: u16) -> Caller {
        Caller {
            domid,
            privileged: false,
            target: None,
        }
    }
    fn is(&self, domid: u16) -> bool {
        self.domid == domid || self.target == Some(domid)
    }
}

impl Perms {
    /// `owner` with `default` access for everyone else.
    pub fn new(owner: u16, default: Access) -> Perms {
        Perms(alloc::vec![Entry {
            access: default,
            domid: owner
        }])
    }

    /// Add an entry for `domid`.
    pub fn with(mut self, domid: u16, access: Access) -> Perms {
        self.0.push(Entry { access, domid });
        self
    }

    pub fn entries(&self) -> &[Entry] {
        &self.0
    }

    pub fn owner(&self) -> u16 {
        self.0[0].domid
    }

    pub fn set_owner(&mut self, domid: u16) {
        self.0[0].domid = domid;
    }

    /// The access a caller has (`perm_for_conn`).
    pub fn rights(&self, c: &Caller) -> Rights {
        if c.privileged || c.is(self.owner()) {
            return Rights::ALL;
        }
        let a = self.0[1..]
            .iter()
            .find(|e| c.is(e.domid))
            .map_or(self.0[0].access, |e| e.access);
        Rights {
            read: a.read(),
            write: a.write(),
            owner: false,
        }
    }

    /// Parse the NUL-separated strings of `XS_SET_PERMS` (`r0`, `b5`...).
    /// Errors: `EINVAL` (empty list, bad letter, bad or out-of-range domid).
    pub fn parse(items: &[&str]) -> Result<Perms, XsErr> {
        if items.is_empty() {
            return Err(XsErr::EINVAL);
        }
        let mut v = Vec::with_capacity(items.len());
        for s in items {
            let b = s.as_bytes();
            let access = b
                .first()
                .and_then(|&c| Access::from_letter(c))
                .ok_or(XsErr::EINVAL)?;
            let id = crate::wire::number(&s[1..]).ok_or(XsErr::EINVAL)?;
            let domid = u16::try_from(id).map_err(|_| XsErr::EINVAL)?;
            v.push(Entry { access, domid });
        }
        Ok(Perms(v))
    }

    /// The strings `XS_GET_PERMS` returns.
    pub fn to_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|e| alloc::format!("{}{}", e.access.letter(), e.domid))
            .collect()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}
