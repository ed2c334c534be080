//! The daemon: connections and the handler of every message type
//! (`xenstored_core.c`, `xenstored_domain.c`, `xenstored_control.c`).
//!
//! A connection is a domain's store ring (made by `XS_INTRODUCE`, gone with
//! `XS_RELEASE`) or a local one of dom0's toolstack (privileged, as libxl's
//! socket is). The daemon knows nothing of hypercalls: mapping the page and
//! the event channel are the [`Platform`]'s job, so it runs the same in dom0
//! and in host tests.
//!
//! Deliberate differences from C xenstored 4.17 (docs/xenstore.md): a request
//! of an unknown type, a type only xenstored sends (`WATCH_EVENT`, `ERROR`),
//! or with an unterminated string closes the connection (4.17 answers
//! `ENOSYS`/`EINVAL`); watch events beyond a per-connection byte budget are
//! dropped (4.17 charges them to a memory quota); no live update, no soft
//! quotas, no `XS_PERM_IGNORE` bookkeeping of dead domains in permissions.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::string::String;
use alloc::vec::Vec;

use xen_public_abi::io::xs_wire::*;

use crate::perms::{Caller, Perms, Rights};
use crate::quota::Quota;
use crate::ring::{self, RingMem};
use crate::store::{self, Node, Store};
use crate::transaction::{Tx, View};
use crate::watch::{self, Fire, Watch};
use crate::wire::{self, Msg, XsErr, HDR};

/// A connection's handle.
pub type ConnId = u32;

/// `DOMID_SELF`.
const DOMID_SELF: u32 = 0x7ff0;

/// What the daemon needs from its host (dom0: hypercalls; tests: memory).
pub trait Platform {
    /// Map `domid`'s store page (`gfn` as `XS_INTRODUCE` gives it).
    fn map_ring(&mut self, domid: u16, gfn: u64) -> Result<(), XsErr>;
    /// Unmap it.
    fn unmap_ring(&mut self, domid: u16);
    /// The mapped page.
    fn ring(&mut self, domid: u16) -> Option<&mut dyn RingMem>;
    /// Bind to `domid`'s event channel `port`: the local port.
    fn bind(&mut self, domid: u16, port: u32) -> Result<u32, XsErr>;
    /// Close a local port.
    fn unbind(&mut self, local: u32);
    /// Signal a local port.
    fn notify(&mut self, local: u32);
    /// A log line (the daemon logs only on rare, per-connection events).
    fn log(&mut self, line: &str);
}

#[derive(Debug)]
enum Kind {
    Local,
    Domain { local_port: u32 },
}

/// One connection.
#[derive(Debug)]
pub struct Conn {
    pub caller: Caller,
    kind: Kind,
    watches: Vec<Watch>,
    txs: BTreeMap<u32, Tx>,
    next_tx: u32,
    out: VecDeque<Msg>,
    /// Encoded bytes of the message being written into the ring.
    partial: Vec<u8>,
    inbuf: Vec<u8>,
    closed: bool,
    event_bytes: usize,
    /// Watch events dropped over the event budget.
    pub dropped_events: u64,
}

impl Conn {
    fn new(caller: Caller, kind: Kind) -> Conn {
        Conn {
            caller,
            kind,
            watches: Vec::new(),
            txs: BTreeMap::new(),
            next_tx: 1,
            out: VecDeque::new(),
            partial: Vec::new(),
            inbuf: Vec::new(),
            closed: false,
            event_bytes: 0,
            dropped_events: 0,
        }
    }
}

/// Why a request got no ordinary answer.
#[derive(Debug)]
enum Fail {
    Xs(XsErr),
    /// A protocol violation: the connection is closed.
    Close(&'static str),
}

impl From<XsErr> for Fail {
    fn from(e: XsErr) -> Fail {
        Fail::Xs(e)
    }
}

type R<T> = Result<T, Fail>;

/// The daemon.
pub struct Xenstored<P: Platform> {
    pub platform: P,
    pub store: Store,
    pub quota: Quota,
    conns: BTreeMap<ConnId, Conn>,
    by_domid: BTreeMap<u16, ConnId>,
    next_conn: ConnId,
    special: BTreeMap<&'static str, Perms>,
    logging: bool,
}

const OK: &[u8] = b"OK\0";

fn args(p: &[u8]) -> R<Vec<&str>> {
    wire::strings(p).ok_or(Fail::Close("unterminated string"))
}

/// Exactly one string (`onearg`).
fn onearg(p: &[u8]) -> R<&str> {
    let a = args(p)?;
    if a.len() != 1 {
        return Err(XsErr::EINVAL.into());
    }
    Ok(a[0])
}

/// C's `atoi` on what we accept: the leading digits (0 if none).
fn atoi(s: &str) -> u32 {
    let d: &str = &s[..s.bytes().take_while(u8::is_ascii_digit).count()];
    d.parse().unwrap_or(u32::MAX)
}

fn has(r: Rights, need: Rights) -> bool {
    (!need.read || r.read) && (!need.write || r.write) && (!need.owner || r.owner)
}

fn overlaps(r: Rights, need: Rights) -> bool {
    (need.read && r.read) || (need.write && r.write) || (need.owner && r.owner)
}

const READ: Rights = Rights {
    read: true,
    write: false,
    owner: false,
};
const WRITE: Rights = Rights {
    read: false,
    write: true,
    owner: false,
};
const WRITE_OWNER: Rights = Rights {
    read: false,
    write: true,
    owner: true,
};

/// `get_node`: the node if the caller has `need`; else `EACCES`, or `ENOENT`
/// when it does not exist and the nearest existing ancestor grants some of
/// `need` (`errno_from_parents`: a caller learns nothing of nodes it may not see).
fn get_node(v: &mut View, c: &Caller, path: &str, need: Rights) -> Result<Node, XsErr> {
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

impl<P: Platform> Xenstored<P> {
    pub fn new(platform: P, quota: Quota) -> Self {
        let mut special = BTreeMap::new();
        special.insert(
            watch::INTRODUCE_DOMAIN,
            Perms::new(0, crate::perms::Access::None),
        );
        special.insert(
            watch::RELEASE_DOMAIN,
            Perms::new(0, crate::perms::Access::None),
        );
        Xenstored {
            platform,
            store: Store::new(),
            quota,
            conns: BTreeMap::new(),
            by_domid: BTreeMap::new(),
            next_conn: 1,
            special,
            logging: true,
        }
    }

    fn log(&mut self, line: &str) {
        if self.logging {
            self.platform.log(line);
        }
    }

    fn add_conn(&mut self, c: Conn) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.insert(id, c);
        id
    }

    /// A privileged local connection for dom0's toolstack.
    pub fn connect_local(&mut self) -> ConnId {
        self.add_conn(Conn::new(Caller::dom0(), Kind::Local))
    }

    /// A local connection acting as `caller` (host tests of unprivileged
    /// requests without a ring).
    pub fn connect_as(&mut self, caller: Caller) -> ConnId {
        self.add_conn(Conn::new(caller, Kind::Local))
    }

    /// The connection of an introduced domain.
    pub fn domain_conn(&self, domid: u16) -> Option<ConnId> {
        self.by_domid.get(&domid).copied()
    }

    /// Is the connection closed for a protocol violation?
    pub fn is_closed(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_none_or(|c| c.closed)
    }

    pub fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.get(&id)
    }

    /// Handle one request on a connection; the reply (and any watch events)
    /// are queued on it.
    pub fn request(&mut self, id: ConnId, msg: Msg) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        if conn.closed {
            return;
        }
        let mut after = Vec::new();
        let reply = match self.dispatch(id, &msg, &mut after) {
            Ok(payload) => {
                if payload.len() > XENSTORE_PAYLOAD_MAX as usize {
                    Msg::error(&msg, XsErr::E2BIG)
                } else {
                    Msg {
                        ty: msg.ty,
                        req_id: msg.req_id,
                        tx_id: msg.tx_id,
                        payload,
                    }
                }
            }
            Err(Fail::Xs(e)) => Msg::error(&msg, e),
            Err(Fail::Close(why)) => {
                self.close(id, why, XENSTORE_ERROR_PROTO);
                return;
            }
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.out.push_back(reply);
        }
        for (cid, ev) in after {
            self.push_event(cid, ev);
        }
    }

    /// For a local connection: send a request, take its reply (watch events
    /// stay queued for [`Xenstored::take_events`]).
    pub fn call(
        &mut self,
        id: ConnId,
        ty: u32,
        tx_id: u32,
        payload: &[u8],
    ) -> Result<Vec<u8>, XsErr> {
        self.request(id, Msg::new(ty, 0, tx_id, payload));
        let c = self.conns.get_mut(&id).ok_or(XsErr::EINVAL)?;
        if c.closed {
            return Err(XsErr::EIO);
        }
        let pos = c
            .out
            .iter()
            .position(|m| m.ty != XS_WATCH_EVENT)
            .ok_or(XsErr::EIO)?;
        let m = c.out.remove(pos).ok_or(XsErr::EIO)?;
        m.result().map(<[u8]>::to_vec)
    }

    /// For a local connection: the queued watch events as (path, token).
    pub fn take_events(&mut self, id: ConnId) -> Vec<(String, String)> {
        let Some(c) = self.conns.get_mut(&id) else {
            return Vec::new();
        };
        let mut v = Vec::new();
        c.out.retain(|m| {
            if m.ty == XS_WATCH_EVENT {
                if let Some(s) = wire::strings(&m.payload) {
                    if s.len() == 2 {
                        v.push((String::from(s[0]), String::from(s[1])));
                    }
                }
                false
            } else {
                true
            }
        });
        c.event_bytes = 0;
        v
    }

    fn close(&mut self, id: ConnId, why: &str, code: u32) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.closed {
            return;
        }
        c.closed = true;
        c.watches.clear();
        c.txs.clear();
        c.out.clear();
        c.partial.clear();
        c.inbuf.clear();
        let domid = c.caller.domid;
        if matches!(c.kind, Kind::Domain { .. }) {
            if let Some(m) = self.platform.ring(domid) {
                m.store(ring::ERROR, code);
            }
        }
        let line = alloc::format!("xenstored: d{domid}: {why}: connection closed");
        self.log(&line);
    }

    /// Serve every domain connection: move replies into response rings, take
    /// requests out of request rings (at most `budget` per connection, and not
    /// while `outstanding` replies wait unread), and notify those whose rings
    /// moved. Returns the number of requests handled.
    pub fn poll(&mut self, budget: usize) -> usize {
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| matches!(c.kind, Kind::Domain { .. }) && !c.closed)
            .map(|(&i, _)| i)
            .collect();
        let mut handled = 0;
        for id in ids {
            handled += self.serve(id, budget);
        }
        handled
    }

    fn serve(&mut self, id: ConnId, budget: usize) -> usize {
        let mut moved = false;
        let mut handled = 0;
        loop {
            match self.flush(id) {
                Ok(m) => moved |= m,
                Err(()) => return handled,
            }
            if handled >= budget {
                break;
            }
            let Some(c) = self.conns.get(&id) else { break };
            if c.closed || (!c.caller.privileged && c.out.len() >= self.quota.outstanding as usize)
            {
                break;
            }
            match self.take_input(id) {
                Ok((m, Some(msg))) => {
                    moved |= m;
                    handled += 1;
                    self.request(id, msg);
                }
                Ok((m, None)) => {
                    moved |= m;
                    break;
                }
                Err(()) => return handled,
            }
        }
        if moved {
            if let Some(Conn {
                kind: Kind::Domain { local_port },
                ..
            }) = self.conns.get(&id)
            {
                let p = *local_port;
                self.platform.notify(p);
            }
        }
        handled
    }

    /// Write queued output into the response ring. `Ok(moved)`; `Err` if the
    /// connection was closed.
    fn flush(&mut self, id: ConnId) -> Result<bool, ()> {
        let mut moved = false;
        loop {
            let c = self.conns.get_mut(&id).ok_or(())?;
            if c.closed {
                return Err(());
            }
            if c.partial.is_empty() {
                let Some(m) = c.out.pop_front() else {
                    return Ok(moved);
                };
                if m.ty == XS_WATCH_EVENT {
                    c.event_bytes = c.event_bytes.saturating_sub(HDR + m.payload.len());
                }
                c.partial = m.encode();
            }
            let domid = c.caller.domid;
            let Some(mem) = self.platform.ring(domid) else {
                return Ok(moved);
            };
            let res = ring::write_responses(mem, &self.conns[&id].partial);
            match res {
                Ok(0) => return Ok(moved),
                Ok(n) => {
                    moved = true;
                    let c = self.conns.get_mut(&id).ok_or(())?;
                    c.partial.drain(..n);
                }
                Err(_) => {
                    self.close(
                        id,
                        "response ring indices out of range",
                        XENSTORE_ERROR_RINGIDX,
                    );
                    return Err(());
                }
            }
        }
    }

    /// Read request bytes: `Ok((moved, Some(message)))` once one is complete.
    fn take_input(&mut self, id: ConnId) -> Result<(bool, Option<Msg>), ()> {
        let mut moved = false;
        loop {
            let c = self.conns.get_mut(&id).ok_or(())?;
            let have = c.inbuf.len();
            let want = if have < HDR {
                HDR
            } else {
                let h = wire::header(&c.inbuf).ok_or(())?;
                HDR + h.len as usize
            };
            if have == want {
                let h = wire::header(&c.inbuf).ok_or(())?;
                let msg = Msg::new(h.r#type, h.req_id, h.tx_id, &c.inbuf[HDR..]);
                c.inbuf.clear();
                return Ok((moved, Some(msg)));
            }
            let domid = c.caller.domid;
            let mut buf = [0u8; 1024];
            let n = (want - have).min(buf.len());
            let Some(mem) = self.platform.ring(domid) else {
                return Ok((moved, None));
            };
            let got = match ring::read_requests(mem, &mut buf[..n]) {
                Ok(g) => g,
                Err(_) => {
                    self.close(
                        id,
                        "request ring indices out of range",
                        XENSTORE_ERROR_RINGIDX,
                    );
                    return Err(());
                }
            };
            if got == 0 {
                return Ok((moved, None));
            }
            moved = true;
            let c = self.conns.get_mut(&id).ok_or(())?;
            c.inbuf.extend_from_slice(&buf[..got]);
            if c.inbuf.len() == HDR {
                let h = wire::header(&c.inbuf).ok_or(())?;
                if h.len > XENSTORE_PAYLOAD_MAX {
                    self.close(id, "message longer than 4096 bytes", XENSTORE_ERROR_PROTO);
                    return Err(());
                }
            }
        }
    }

    fn push_event(&mut self, id: ConnId, ev: Msg) {
        let max = self.quota.event_bytes;
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if c.closed {
            return;
        }
        let len = HDR + ev.payload.len();
        if !c.caller.privileged && c.event_bytes + len > max {
            c.dropped_events += 1;
            if c.dropped_events == 1 {
                let line = alloc::format!(
                    "xenstored: d{}: watch events dropped (it does not read its ring)",
                    c.caller.domid
                );
                self.log(&line);
            }
            return;
        }
        c.event_bytes += len;
        c.out.push_back(ev);
    }

    /// Send the events of a change to every connection whose watches match
    /// and that may read the node (or its parent, or could read it before).
    fn fire(&mut self, f: &Fire) {
        let special = watch::is_special(&f.name);
        let parent_perms = store::split(&f.name)
            .and_then(|(p, _)| self.store.get(p))
            .map(|n| n.perms.clone());
        let mut evs = Vec::new();
        for (&id, c) in &self.conns {
            if c.closed || c.watches.is_empty() {
                continue;
            }
            let can = |p: &Option<Perms>| p.as_ref().is_some_and(|p| p.rights(&c.caller).read);
            let permitted = if special {
                can(&self.special.get(f.name.as_str()).cloned())
            } else {
                can(&f.old_perms) || can(&f.perms) || can(&parent_perms)
            };
            if !permitted {
                continue;
            }
            for w in &c.watches {
                if w.matches(&f.name, f.exact) {
                    let payload = wire::cstrs(&[w.event_path(&f.name), &w.token]);
                    evs.push((id, Msg::new(XS_WATCH_EVENT, 0, 0, &payload)));
                }
            }
        }
        for (id, m) in evs {
            self.push_event(id, m);
        }
    }

    fn caller(&self, id: ConnId) -> Caller {
        self.conns[&id].caller
    }

    /// One request. `after`: events to queue after the reply (a new watch's
    /// first event).
    fn dispatch(&mut self, id: ConnId, m: &Msg, after: &mut Vec<(ConnId, Msg)>) -> R<Vec<u8>> {
        let c = self.caller(id);
        let priv_only = matches!(
            m.ty,
            XS_CONTROL
                | XS_INTRODUCE
                | XS_RELEASE
                | XS_IS_DOMAIN_INTRODUCED
                | XS_RESUME
                | XS_SET_TARGET
        );
        match m.ty {
            XS_WATCH_EVENT | XS_ERROR => {
                return Err(Fail::Close("message type only xenstored sends"))
            }
            t if t >= XS_TYPE_COUNT || t == 20 => return Err(Fail::Close("unknown message type")),
            _ => {}
        }
        if priv_only && !c.privileged {
            return Err(XsErr::EACCES.into());
        }
        // `transaction_lookup`: every type but WATCH/UNWATCH names an open
        // transaction or none.
        if m.tx_id != 0
            && !matches!(m.ty, XS_WATCH | XS_UNWATCH)
            && !self.conns[&id].txs.contains_key(&m.tx_id)
        {
            return Err(XsErr::ENOENT.into());
        }
        match m.ty {
            XS_WATCH => return self.do_watch(id, &c, &m.payload, after),
            XS_UNWATCH => return self.do_unwatch(id, &c, &m.payload),
            XS_TRANSACTION_START => return self.do_transaction_start(id, &c, m),
            XS_TRANSACTION_END => return self.do_transaction_end(id, m),
            XS_INTRODUCE => return self.do_introduce(&m.payload),
            XS_RELEASE => return self.do_release(&m.payload),
            XS_GET_DOMAIN_PATH => {
                let d = atoi(onearg(&m.payload)?);
                return Ok(wire::cstr(&store::domain_path(d)));
            }
            XS_IS_DOMAIN_INTRODUCED => {
                let d = atoi(onearg(&m.payload)?);
                let yes = d == DOMID_SELF
                    || d == 0
                    || u16::try_from(d).is_ok_and(|d| self.by_domid.contains_key(&d));
                return Ok(wire::cstr(if yes { "T" } else { "F" }));
            }
            XS_RESUME => {
                let d = atoi(onearg(&m.payload)?);
                self.connected(d)?;
                return Ok(OK.to_vec());
            }
            XS_SET_TARGET => return self.do_set_target(&m.payload),
            XS_RESET_WATCHES => {
                let conn = self.conns.get_mut(&id).ok_or(XsErr::EINVAL)?;
                conn.watches.clear();
                conn.txs.clear();
                return Ok(OK.to_vec());
            }
            XS_CONTROL => return self.do_control(&m.payload),
            _ => {}
        }
        // Store operations, possibly in a transaction.
        let mut tx = if m.tx_id != 0 {
            let conn = self.conns.get_mut(&id).ok_or(XsErr::EINVAL)?;
            Some(conn.txs.remove(&m.tx_id).ok_or(XsErr::ENOENT)?)
        } else {
            None
        };
        let q = self.quota;
        let special = &mut self.special;
        let mut v = View {
            store: &mut self.store,
            tx: tx.as_mut(),
        };
        let mut fires = Vec::new();
        let r = store_op(&mut v, &c, &q, special, m, &mut fires);
        let mut now = Vec::new();
        for f in fires {
            if let Some(f) = v.event(f) {
                now.push(f);
            }
        }
        if let Some(tx) = tx {
            if let Some(conn) = self.conns.get_mut(&id) {
                conn.txs.insert(m.tx_id, tx);
            }
        }
        for f in &now {
            self.fire(f);
        }
        r
    }

    fn connected(&self, d: u32) -> Result<ConnId, XsErr> {
        if d == 0 {
            return Err(XsErr::EINVAL);
        }
        u16::try_from(d)
            .ok()
            .and_then(|d| self.by_domid.get(&d).copied())
            .ok_or(XsErr::ENOENT)
    }

    fn do_watch(
        &mut self,
        id: ConnId,
        c: &Caller,
        p: &[u8],
        after: &mut Vec<(ConnId, Msg)>,
    ) -> R<Vec<u8>> {
        let a = args(p)?;
        if a.len() != 2 {
            return Err(XsErr::EINVAL.into());
        }
        let (path, relative_to) = if a[0].starts_with('@') {
            if a[0].len() > XENSTORE_REL_PATH_MAX as usize {
                return Err(XsErr::EINVAL.into());
            }
            (String::from(a[0]), None)
        } else {
            let rel = !a[0].starts_with('/');
            (
                store::canonical(c.domid, a[0])?,
                rel.then(|| store::domain_path(c.domid.into())),
            )
        };
        let max = self.quota.watches as usize;
        let conn = self.conns.get_mut(&id).ok_or(XsErr::EINVAL)?;
        if conn
            .watches
            .iter()
            .any(|w| w.path == path && w.token == a[1])
        {
            return Err(XsErr::EEXIST.into());
        }
        if !c.privileged && conn.watches.len() > max {
            return Err(XsErr::E2BIG.into());
        }
        let w = Watch {
            path,
            token: String::from(a[1]),
            relative_to,
        };
        let payload = wire::cstrs(&[w.event_path(&w.path), &w.token]);
        conn.watches.push(w);
        after.push((id, Msg::new(XS_WATCH_EVENT, 0, 0, &payload)));
        Ok(OK.to_vec())
    }

    fn do_unwatch(&mut self, id: ConnId, c: &Caller, p: &[u8]) -> R<Vec<u8>> {
        let a = args(p)?;
        if a.len() != 2 {
            return Err(XsErr::EINVAL.into());
        }
        let path = if a[0].starts_with('@') {
            String::from(a[0])
        } else {
            store::canonical(c.domid, a[0])?
        };
        let conn = self.conns.get_mut(&id).ok_or(XsErr::EINVAL)?;
        let i = conn
            .watches
            .iter()
            .position(|w| w.path == path && w.token == a[1])
            .ok_or(XsErr::ENOENT)?;
        conn.watches.remove(i);
        Ok(OK.to_vec())
    }

    fn do_transaction_start(&mut self, id: ConnId, c: &Caller, m: &Msg) -> R<Vec<u8>> {
        if m.tx_id != 0 {
            return Err(XsErr::EBUSY.into());
        }
        let max = self.quota.transactions as usize;
        let conn = self.conns.get_mut(&id).ok_or(XsErr::EINVAL)?;
        if !c.privileged && conn.txs.len() > max {
            return Err(XsErr::ENOSPC.into());
        }
        let mut t = conn.next_tx;
        while t == 0 || conn.txs.contains_key(&t) {
            t = t.wrapping_add(1);
        }
        conn.next_tx = t.wrapping_add(1);
        conn.txs.insert(t, Tx::default());
        Ok(wire::cstr(&wire::decimal(t.into())))
    }

    fn do_transaction_end(&mut self, id: ConnId, m: &Msg) -> R<Vec<u8>> {
        let arg = onearg(&m.payload)?;
        let commit = match arg {
            "T" => true,
            "F" => false,
            _ => return Err(XsErr::EINVAL.into()),
        };
        let conn = self.conns.get_mut(&id).ok_or(XsErr::EINVAL)?;
        let tx = conn.txs.remove(&m.tx_id).ok_or(XsErr::ENOENT)?;
        if !commit {
            return Ok(OK.to_vec());
        }
        if !tx.consistent(&self.store) {
            return Err(XsErr::EAGAIN.into());
        }
        for f in tx.commit(&mut self.store) {
            self.fire(&f);
        }
        Ok(OK.to_vec())
    }

    fn do_introduce(&mut self, p: &[u8]) -> R<Vec<u8>> {
        let a = args(p)?;
        if a.len() < 3 {
            return Err(XsErr::EINVAL.into());
        }
        let domid = u16::try_from(atoi(a[0])).map_err(|_| XsErr::EINVAL)?;
        let gfn = u64::from(atoi(a[1]));
        let port = atoi(a[2]);
        if port == 0 || port == u32::MAX || domid == 0 || u32::from(domid) >= DOMID_SELF {
            return Err(XsErr::EINVAL.into());
        }
        if let Some(&cid) = self.by_domid.get(&domid) {
            // Again: rebind the event channel (as 4.17 does).
            if let Some(Conn {
                kind: Kind::Domain { local_port },
                ..
            }) = self.conns.get(&cid)
            {
                let old = *local_port;
                self.platform.unbind(old);
            }
            let lp = self.platform.bind(domid, port)?;
            if let Some(c) = self.conns.get_mut(&cid) {
                c.kind = Kind::Domain { local_port: lp };
            }
            return Ok(OK.to_vec());
        }
        self.platform.map_ring(domid, gfn)?;
        let lp = match self.platform.bind(domid, port) {
            Ok(lp) => lp,
            Err(e) => {
                self.platform.unmap_ring(domid);
                return Err(e.into());
            }
        };
        if let Some(mem) = self.platform.ring(domid) {
            mem.store(ring::CONNECTION, XENSTORE_CONNECTED);
        }
        self.platform.notify(lp);
        let cid = self.add_conn(Conn::new(
            Caller::domu(domid),
            Kind::Domain { local_port: lp },
        ));
        self.by_domid.insert(domid, cid);
        self.fire(&Fire::new(watch::INTRODUCE_DOMAIN, false, None));
        Ok(OK.to_vec())
    }

    fn do_release(&mut self, p: &[u8]) -> R<Vec<u8>> {
        let d = atoi(onearg(p)?);
        let cid = self.connected(d)?;
        let domid = d as u16;
        self.by_domid.remove(&domid);
        if let Some(c) = self.conns.remove(&cid) {
            if let Kind::Domain { local_port } = c.kind {
                self.platform.unbind(local_port);
                self.platform.unmap_ring(domid);
            }
        }
        // Connections targeting it lose the target.
        for c in self.conns.values_mut() {
            if c.caller.target == Some(domid) {
                c.caller.target = None;
            }
        }
        self.fire(&Fire::new(watch::RELEASE_DOMAIN, false, None));
        Ok(OK.to_vec())
    }

    fn do_set_target(&mut self, p: &[u8]) -> R<Vec<u8>> {
        let a = args(p)?;
        if a.len() < 2 {
            return Err(XsErr::EINVAL.into());
        }
        let d = self.connected(atoi(a[0]))?;
        self.connected(atoi(a[1]))?;
        let t = atoi(a[1]) as u16;
        if let Some(c) = self.conns.get_mut(&d) {
            c.caller.target = Some(t);
        }
        Ok(OK.to_vec())
    }

    fn do_control(&mut self, p: &[u8]) -> R<Vec<u8>> {
        let a = args(p)?;
        let (cmd, rest) = a.split_first().ok_or(XsErr::EINVAL)?;
        match (*cmd, rest) {
            ("check", []) => {
                if let Err(why) = self.store.check() {
                    let line = alloc::format!("xenstored: check: {why}");
                    self.platform.log(&line);
                }
                Ok(OK.to_vec())
            }
            ("log", ["on"]) => {
                self.logging = true;
                Ok(OK.to_vec())
            }
            ("log", ["off"]) => {
                self.logging = false;
                Ok(OK.to_vec())
            }
            ("print", [s]) => {
                let line = alloc::format!("xenstored: {s}");
                self.platform.log(&line);
                Ok(OK.to_vec())
            }
            ("quota", []) => Ok(wire::cstr(&self.quota_text())),
            ("quota", ["set", name, val]) => {
                let n = wire::number(val).ok_or(XsErr::EINVAL)?;
                let q = &mut self.quota;
                match *name {
                    "nodes" => q.nodes_per_domain = n,
                    "node-size" => q.node_size = n as usize,
                    "watches" => q.watches = n,
                    "transactions" => q.transactions = n,
                    "transaction-nodes" => q.transaction_nodes = n,
                    "permissions" => q.perms_per_node = n as usize,
                    "outstanding" => q.outstanding = n,
                    _ => return Err(XsErr::EINVAL.into()),
                }
                Ok(OK.to_vec())
            }
            ("quota", [d]) => {
                let d = u16::try_from(wire::number(d).ok_or(XsErr::EINVAL)?)
                    .map_err(|_| XsErr::EINVAL)?;
                let cid = self.by_domid.get(&d).ok_or(XsErr::ENOENT)?;
                let c = &self.conns[cid];
                let s = alloc::format!(
                    "nodes: {}\nwatches: {}\ntransactions: {}\noutstanding: {}\n",
                    self.store.owned_by(d),
                    c.watches.len(),
                    c.txs.len(),
                    c.out.len()
                );
                Ok(wire::cstr(&s))
            }
            ("help", []) => Ok(wire::cstr(
                "check\t\nlog\ton|off\nprint\t<string>\nquota\t[set <name> <val>|<domid>]\nhelp\t\n",
            )),
            _ => Err(XsErr::EINVAL.into()),
        }
    }

    fn quota_text(&self) -> String {
        let q = &self.quota;
        alloc::format!(
            "nodes: {}\nnode-size: {}\nwatches: {}\ntransactions: {}\ntransaction-nodes: {}\npermissions: {}\noutstanding: {}\n",
            q.nodes_per_domain,
            q.node_size,
            q.watches,
            q.transactions,
            q.transaction_nodes,
            q.perms_per_node,
            q.outstanding
        )
    }
}

/// Enforce the transaction-node quota for `n` more nodes.
fn tx_room(v: &View, c: &Caller, q: &Quota, n: usize) -> Result<(), XsErr> {
    if !c.privileged && v.in_tx() && v.touched() + n > q.transaction_nodes as usize {
        return Err(XsErr::ENOSPC);
    }
    Ok(())
}

fn size_ok(c: &Caller, q: &Quota, n: &Node) -> Result<(), XsErr> {
    if !c.privileged && n.record_size() >= q.node_size {
        return Err(XsErr::ENOSPC);
    }
    Ok(())
}

/// Create `path` and any missing ancestors (`construct_node`): each inherits
/// its parent's permissions; an unprivileged creator becomes the owner.
fn create(v: &mut View, c: &Caller, q: &Quota, path: &str, value: &[u8]) -> Result<Node, XsErr> {
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
fn store_op(
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
