//! The node requests of `xenstored_core.c` (READ, DIRECTORY, DIRECTORY_PART,
//! GET_PERMS, WRITE, MKDIR, RM, SET_PERMS) over a [`View`] of the store,
//! with the access checks (`get_node`, `errno_from_parents`), node creation
//! (`construct_node`) and the quotas that apply to them; and the argument
//! helpers every handler uses.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use xen_public_abi::io::xs_wire::*;

use crate::perms::{Caller, Perms, Rights};
use crate::quota::Quota;
use crate::store::{self, Node};
use crate::transaction::View;
use crate::watch::Fire;
use crate::wire::{self, Msg, XsErr};

/// Why a request got no ordinary answer.
#[derive(Debug)]
pub(crate) enum Fail {
    Xs(XsErr),
    /// A protocol violation: the connection is closed.
    Close(&'static str),
}

impl From<XsErr> for Fail {
    fn from(e: XsErr) -> Fail {
        Fail::Xs(e)
    }
}

pub(crate) type R<T> = Result<T, Fail>;

pub(crate) const OK: &[u8] = b"OK\0";

pub(crate) fn args(p: &[u8]) -> R<Vec<&str>> {
    wire::strings(p).ok_or(Fail::Close("unterminated string"))
}

/// Exactly one string (`onearg`).
pub(crate) fn onearg(p: &[u8]) -> R<&str> {
    let a = args(p)?;
    if a.len() != 1 {
        return Err(XsErr::EINVAL.into());
    }
    Ok(a[0])
}

/// C's `atoi` on what we accept: the leading digits (0 if none).
pub(crate) fn atoi(s: &str) -> u32 {
    let d: &str = &s[..s.bytes().take_while(u8::is_ascii_digit).count()];
    d.parse().unwrap_or(u32::MAX)
}

pub(crate) fn has(r: Rights, need: Rights) -> bool {
    (!need.read || r.read) && (!need.write || r.write) && (!need.owner || r.owner)
}

pub(crate) fn overlaps(r: Rights, need: Rights) -> bool {
    (need.read && r.read) || (need.write && r.write) || (need.owner && r.owner)
}

pub(crate) const READ: Rights = Rights {
    read: true,
    write: false,
    owner: false,
};
pub(crate) const WRITE: Rights = Rights {
    read: false,
    write: true,
    owner: false,
};
pub(crate) const WRITE_OWNER: Rights = Rights {
    read: false,
    write: true,
    owner: true,
};

/// `get_node`: the node if the caller has `need`; else `EACCES`, or `ENOENT`
/// when it does not exist and the nearest existing ancestor grants some of
/// `need` (`errno_from_parents`: a caller learns nothing of nodes it may not see).
pub(crate) fn get_node(v: &mut View, c: &Caller, path: &str, need: Rights) -> Result<Node, XsErr> {
    let err = match v.read(path) {
        Some(n) if has(n.perms.rights(c), need) => return Ok(n),
        Some(_) => XsErr::EACCES,
        None => XsErr::ENOENT,
    };
    let mut p = path;
    while let Some((parent, _)) = store::split(p) {
        if let Some(n) = v.peek(parent) {
            return Err(if overlaps(n.perms.rights(c), need) {
                err
            } else {
                XsErr::EACCES
            });
        }
        p = parent;
    }
    Err(XsErr::EACCES)
}

/// Enforce the transaction-node quota for `n` more nodes.
pub(crate) fn tx_room(v: &View, c: &Caller, q: &Quota, n: usize) -> Result<(), XsErr> {
    if !c.privileged && v.in_tx() && v.touched() + n > q.transaction_nodes as usize {
        return Err(XsErr::ENOSPC);
    }
    Ok(())
}

pub(crate) fn size_ok(c: &Caller, q: &Quota, n: &Node) -> Result<(), XsErr> {
    if !c.privileged && n.record_size() >= q.node_size {
        return Err(XsErr::ENOSPC);
    }
    Ok(())
}

/// Create `path` and any missing ancestors (`construct_node`): each inherits
/// its parent's permissions; an unprivileged creator becomes the owner.
pub(crate) fn create(
    v: &mut View,
    c: &Caller,
    q: &Quota,
    path: &str,
    value: &[u8],
) -> Result<Node, XsErr> {
    let mut missing = alloc::vec![String::from(path)];
    let mut p = String::from(path);
    let parent_path = loop {
        let (parent, _) = store::split(&p).ok_or(XsErr::EINVAL)?;
        if v.peek(parent).is_some() {
            break String::from(parent);
        }
        missing.push(String::from(parent));
        p = String::from(parent);
    };
    tx_room(v, c, q, missing.len() + 1)?;
    let mut parent = v.read(&parent_path).ok_or(XsErr::ENOENT)?;
    let mut ppath = parent_path;
    if !c.privileged && v.owned_by(c.domid) + missing.len() as i64 > i64::from(q.nodes_per_domain) {
        return Err(XsErr::ENOSPC);
    }
    let mut writes = Vec::new();
    for name in missing.iter().rev() {
        let (_, base) = store::split(name).ok_or(XsErr::EINVAL)?;
        parent.children.push(String::from(base));
        size_ok(c, q, &parent)?;
        let mut perms = parent.perms.clone();
        if !c.privileged {
            perms.set_owner(c.domid);
        }
        let mut node = Node::new(perms);
        if name == path {
            node.value = value.to_vec();
        }
        size_ok(c, q, &node)?;
        writes.push((core::mem::replace(&mut ppath, name.clone()), parent));
        parent = node;
    }
    writes.push((ppath, parent.clone()));
    for (p, n) in writes {
        v.write(&p, n);
    }
    Ok(parent)
}

/// Handlers of the node operations.
pub(crate) fn store_op(
    v: &mut View,
    c: &Caller,
    q: &Quota,
    special: &mut BTreeMap<&'static str, Perms>,
    m: &Msg,
    fires: &mut Vec<Fire>,
) -> R<Vec<u8>> {
    let p = &m.payload;
    match m.ty {
        XS_READ => {
            let path = store::canonical(c.domid, onearg(p)?)?;
            tx_room(v, c, q, usize::from(v.is_new_touch(&path)))?;
            Ok(get_node(v, c, &path, READ)?.value)
        }
        XS_DIRECTORY => {
            let path = store::canonical(c.domid, onearg(p)?)?;
            tx_room(v, c, q, usize::from(v.is_new_touch(&path)))?;
            let n = get_node(v, c, &path, READ)?;
            let names: Vec<&str> = n.children.iter().map(String::as_str).collect();
            Ok(wire::cstrs(&names))
        }
        XS_DIRECTORY_PART => {
            let a = args(p)?;
            if a.len() != 2 {
                return Err(XsErr::EINVAL.into());
            }
            let path = store::canonical(c.domid, a[0])?;
            let n = get_node(v, c, &path, READ)?;
            let off = atoi(a[1]) as usize;
            let children: Vec<&str> = n.children.iter().map(String::as_str).collect();
            let all = wire::cstrs(&children);
            let mut out = wire::cstr(&wire::decimal(n.generation));
            if off >= all.len() {
                out.push(0);
                return Ok(out);
            }
            let max = XENSTORE_PAYLOAD_MAX as usize - out.len() - 1;
            let mut len = 0;
            let mut done = false;
            while off + len < all.len() {
                let rest = &all[off + len..];
                let s = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
                if len + s >= max {
                    break;
                }
                len += s + 1;
                if off + len >= all.len() {
                    done = true;
                    break;
                }
            }
            out.extend_from_slice(&all[off..(off + len).min(all.len())]);
            if done {
                out.push(0);
            }
            Ok(out)
        }
        XS_GET_PERMS => {
            let arg = onearg(p)?;
            let perms = if arg.starts_with('@') {
                let perms = special.get(arg).ok_or(XsErr::ENOENT)?;
                if !perms.rights(c).read {
                    return Err(XsErr::EACCES.into());
                }
                perms.clone()
            } else {
                let path = store::canonical(c.domid, arg)?;
                get_node(v, c, &path, READ)?.perms
            };
            let s = perms.to_strings();
            let refs: Vec<&str> = s.iter().map(String::as_str).collect();
            Ok(wire::cstrs(&refs))
        }
        XS_WRITE => {
            let nul = p
                .iter()
                .position(|&b| b == 0)
                .ok_or(Fail::Close("unterminated string"))?;
            let name = core::str::from_utf8(&p[..nul]).map_err(|_| XsErr::EINVAL)?;
            let value = &p[nul + 1..];
            let path = store::canonical(c.domid, name)?;
            tx_room(v, c, q, usize::from(v.is_new_touch(&path)))?;
            let node = match get_node(v, c, &path, WRITE) {
                Ok(mut n) => {
                    n.value = value.to_vec();
                    size_ok(c, q, &n)?;
                    v.write(&path, n.clone());
                    n
                }
                Err(XsErr::ENOENT) => create(v, c, q, &path, value)?,
                Err(e) => return Err(e.into()),
            };
            fires.push(Fire::new(&path, false, Some(node.perms)));
            Ok(OK.to_vec())
        }
        XS_MKDIR => {
            let path = store::canonical(c.domid, onearg(p)?)?;
            tx_room(v, c, q, usize::from(v.is_new_touch(&path)))?;
            match get_node(v, c, &path, WRITE) {
                Ok(_) => {}
                Err(XsErr::ENOENT) => {
                    let n = create(v, c, q, &path, &[])?;
                    fires.push(Fire::new(&path, false, Some(n.perms)));
                }
                Err(e) => return Err(e.into()),
            }
            Ok(OK.to_vec())
        }
        XS_RM => {
            let path = store::canonical(c.domid, onearg(p)?)?;
            let node = match get_node(v, c, &path, WRITE) {
                Ok(n) => n,
                Err(XsErr::ENOENT) => {
                    let parent = store::split(&path).map(|x| x.0).unwrap_or("/");
                    return match v.read(parent) {
                        Some(_) => Ok(OK.to_vec()),
                        None => Err(XsErr::ENOENT.into()),
                    };
                }
                Err(e) => return Err(e.into()),
            };
            if path == "/" {
                return Err(XsErr::EINVAL.into());
            }
            // The subtree, children before parents.
            let mut todo = alloc::vec![(path.clone(), node.clone())];
            let mut order = Vec::new();
            while let Some((p, n)) = todo.pop() {
                for ch in &n.children {
                    let cp = store::child_path(&p, ch);
                    if let Some(cn) = v.peek(&cp) {
                        todo.push((cp, cn));
                    }
                }
                order.push((p, n));
            }
            tx_room(v, c, q, order.len() + 1)?;
            let (parent_path, base) = store::split(&path).ok_or(XsErr::EINVAL)?;
            let parent_path = String::from(parent_path);
            let mut parent = v.read(&parent_path).ok_or(XsErr::ENOENT)?;
            parent.children.retain(|x| x != base);
            for (p, n) in order.iter().rev() {
                v.remove(p);
                if *p != path {
                    fires.push(Fire::new(p, true, Some(n.perms.clone())));
                }
            }
            v.write(&parent_path, parent);
            fires.push(Fire::new(&path, false, Some(node.perms)));
            Ok(OK.to_vec())
        }
        XS_SET_PERMS => {
            let a = args(p)?;
            if a.len() < 2 {
                return Err(XsErr::EINVAL.into());
            }
            if !c.privileged && a.len() - 1 > q.perms_per_node {
                return Err(XsErr::ENOSPC.into());
            }
            let perms = Perms::parse(&a[1..])?;
            if a[0].starts_with('@') {
                let cur = special.get_mut(a[0]).ok_or(XsErr::ENOENT)?;
                if !has(cur.rights(c), WRITE_OWNER) {
                    return Err(XsErr::EACCES.into());
                }
                *cur = perms;
                return Ok(OK.to_vec());
            }
            let path = store::canonical(c.domid, a[0])?;
            tx_room(v, c, q, usize::from(v.is_new_touch(&path)))?;
            let mut n = get_node(v, c, &path, WRITE_OWNER)?;
            if !c.privileged && perms.owner() != n.perms.owner() {
                return Err(XsErr::EPERM.into());
            }
            let old = core::mem::replace(&mut n.perms, perms.clone());
            size_ok(c, q, &n)?;
            v.write(&path, n);
            let mut f = Fire::new(&path, false, Some(perms));
            f.old_perms = Some(old);
            fires.push(f);
            Ok(OK.to_vec())
        }
        _ => Err(XsErr::ENOSYS.into()),
    }
}
