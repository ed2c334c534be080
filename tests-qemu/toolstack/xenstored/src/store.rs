//! The tree of nodes (`xenstored_core.c`'s node database) and path rules.
//!
//! Nodes live in one map keyed by absolute path; each keeps its children's
//! names in creation order (the order `XS_DIRECTORY` returns, and the byte
//! offsets `XS_DIRECTORY_PART` counts in) and a generation number that changes
//! on every write (transactions detect conflicts with it). The store counts how
//! many nodes each domain owns, for the node quota.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::perms::{Access, Perms};
use crate::wire::XsErr;
use xen_public_abi::io::xs_wire::XENSTORE_REL_PATH_MAX;

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub value: Vec<u8>,
    pub perms: Perms,
    /// Child names (not paths), in creation order.
    pub children: Vec<String>,
    /// Changes on every write of this node.
    pub generation: u64,
}

impl Node {
    pub fn new(perms: Perms) -> Node {
        Node {
            value: Vec::new(),
            perms,
            children: Vec::new(),
            generation: 0,
        }
    }

    /// Bytes of the record C xenstored stores (`xs_tdb_record_hdr` of 24
    /// bytes, 8 per permission, the value, the NUL-terminated child names):
    /// what the node-size quota limits.
    pub fn record_size(&self) -> usize {
        24 + 8 * self.perms.len()
            + self.value.len()
            + self.children.iter().map(|c| c.len() + 1).sum::<usize>()
    }
}

/// The store.
#[derive(Clone, Debug)]
pub struct Store {
    nodes: BTreeMap<String, Node>,
    next_generation: u64,
    owned: BTreeMap<u16, u32>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// A store with only `/` (owned by dom0, no access for others).
    pub fn new() -> Store {
        let mut s = Store {
            nodes: BTreeMap::new(),
            next_generation: 1,
            owned: BTreeMap::new(),
        };
        s.put("/", Node::new(Perms::new(0, Access::None)));
        s
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Insert or replace a node, with a new generation.
    pub fn put(&mut self, path: &str, mut node: Node) {
        node.generation = self.next_generation;
        self.next_generation += 1;
        if let Some(old) = self.nodes.get(path) {
            self.dec(old.perms.owner());
        }
        *self.owned.entry(node.perms.owner()).or_insert(0) += 1;
        self.nodes.insert(String::from(path), node);
    }

    /// Remove one node (not its children; the caller walks the subtree).
    pub fn remove(&mut self, path: &str) {
        if let Some(old) = self.nodes.remove(path) {
            self.dec(old.perms.owner());
        }
    }

    fn dec(&mut self, owner: u16) {
        if let Some(n) = self.owned.get_mut(&owner) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.owned.remove(&owner);
            }
        }
    }

    /// Nodes owned by `domid`.
    pub fn owned_by(&self, domid: u16) -> u32 {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    /// Every path (for checks and tests).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.nodes.keys().map(String::as_str)
    }

    /// `CONTROL check`: every node's parent exists and lists it, every listed
    /// child exists, and the owner counts add up. `Err` names the first fault.
    pub fn check(&self) -> Result<(), String> {
        let mut owned: BTreeMap<u16, u32> = BTreeMap::new();
        for (path, node) in &self.nodes {
            *owned.entry(node.perms.owner()).or_insert(0) += 1;
            for c in &node.children {
                if !self.nodes.contains_key(&child_path(path, c)) {
                    return Err(alloc::format!("{path}: child {c} missing"));
                }
            }
            if let Some((parent, base)) = split(path) {
                match self.nodes.get(parent) {
                    Some(p) if p.children.iter().any(|c| c == base) => {}
                    _ => return Err(alloc::format!("{path}: not listed by its parent")),
                }
            }
        }
        if owned != self.owned {
            return Err(String::from("owner counts disagree"));
        }
        Ok(())
    }
}

/// `parent/child` (`/` + child for the root).
pub fn child_path(parent: &str, child: &str) -> String {
    if parent == "/" {
        alloc::format!("/{child}")
    } else {
        alloc::format!("{parent}/{child}")
    }
}

/// (parent, last component) of an absolute path; `None` for `/`.
pub fn split(path: &str) -> Option<(&str, &str)> {
    if path == "/" {
        return None;
    }
    let i = path.rfind('/')?;
    Some((if i == 0 { "/" } else { &path[..i] }, &path[i + 1..]))
}

/// `/local/domain/<domid>`.
pub fn domain_path(domid: u32) -> String {
    alloc::format!("/local/domain/{domid}")
}

/// The absolute path a connection of `domid` means (`canonicalize`): relative
/// paths are under its domain path. Then `is_valid_nodename`: starts with
/// `/`, no trailing `/` (but `/`), no `//`, only `A-Za-z0-9-/_@`, and at most
/// `XENSTORE_REL_PATH_MAX` bytes past a `/local/domain/N/` prefix. `EINVAL`
/// otherwise.
pub fn canonical(domid: u16, path: &str) -> Result<String, XsErr> {
    let abs = if path.starts_with('/') {
        String::from(path)
    } else {
        alloc::format!("{}/{}", domain_path(domid.into()), path)
    };
    if valid_name(&abs) {
        Ok(abs)
    } else {
        Err(XsErr::EINVAL)
    }
}

fn valid_name(p: &str) -> bool {
    if !p.starts_with('/') || (p.ends_with('/') && p != "/") || p.contains("//") {
        return false;
    }
    if !p
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-/_@".contains(&b))
    {
        return false;
    }
    // `/local/domain/%5u/` as sscanf reads it: up to 5 digits then a slash.
    let mut local_off = 0;
    if let Some(rest) = p.strip_prefix("/local/domain/") {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if (1..=5).contains(&digits) && rest.as_bytes().get(digits) == Some(&b'/') {
            local_off = "/local/domain/".len() + digits + 1;
        }
    }
    p.len() <= local_off + XENSTORE_REL_PATH_MAX as usize
}
