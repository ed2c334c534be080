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

use crate::node_ops::{args, atoi, onearg, store_op, Fail, OK, R};
use crate::perms::{Caller, Perms};
use crate::quota::Quota;
use crate::ring::{self, RingMem};
use crate::store::{self, Store};
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
pub(crate) enum Kind {
    Local,
    Domain { local_port: u32 },
}

/// One connection.
#[derive(Debug)]
pub struct Conn {
    pub caller: Caller,
    pub(crate) kind: Kind,
    pub(crate) watches: Vec<Watch>,
    pub(crate) txs: BTreeMap<u32, Tx>,
    pub(crate) next_tx: u32,
    pub(crate) out: VecDeque<Msg>,
    /// Encoded bytes of the message being written into the ring.
    pub(crate) partial: Vec<u8>,
    pub(crate) inbuf: Vec<u8>,
    pub(crate) closed: bool,
    pub(crate) event_bytes: usize,
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

/// The daemon.
pub struct Xenstored<P: Platform> {
    pub platform: P,
    pub store: Store,
    pub quota: Quota,
    pub(crate) conns: BTreeMap<ConnId, Conn>,
    pub(crate) by_domid: BTreeMap<u16, ConnId>,
    pub(crate) next_conn: ConnId,
    pub(crate) special: BTreeMap<&'static str, Perms>,
    pub(crate) logging: bool,
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

    pub(crate) fn log(&mut self, line: &str) {
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

    pub(crate) fn push_event(&mut self, id: ConnId, ev: Msg) {
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
}
