//! Moving bytes between a domain connection and its store page
//! (`xenstored_core.c`'s `handle_input`/`handle_output`, `ignore_connection`):
//! replies out into the response ring, requests in from the request ring one
//! message at a time (so a domain that does not read its replies stops being
//! read: the outstanding-request quota), a header announcing more than
//! `XENSTORE_PAYLOAD_MAX` or indices claiming more than a ring closes the
//! connection, with the page's `error` field set and one log line.

use alloc::vec::Vec;

use xen_public_abi::io::xs_wire::*;

use crate::daemon::{Conn, ConnId, Kind, Platform, Xenstored};
use crate::ring;
use crate::wire::{self, Msg, HDR};

impl<P: Platform> Xenstored<P> {
    pub(crate) fn close(&mut self, id: ConnId, why: &str, code: u32) {
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
}
