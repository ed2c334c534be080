//! A fake platform: store pages in memory, event channels as numbers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use xen_public_abi::io::xs_wire::*;
use xenstored::perms::Caller;
use xenstored::quota::Quota;
use xenstored::ring::{self, PageBuf, RingMem};
use xenstored::wire::{self, Msg, HDR};
use xenstored::{ConnId, Platform, Xenstored, XsErr};

#[derive(Default)]
pub struct Fake {
    pub pages: BTreeMap<u16, PageBuf>,
    pub unmapped: Vec<u16>,
    pub notified: Vec<u32>,
    pub logs: Vec<String>,
    /// Guest side: response bytes of an incomplete message.
    pub partial: BTreeMap<u16, Vec<u8>>,
}

impl Platform for Fake {
    fn map_ring(&mut self, domid: u16, _gfn: u64) -> Result<(), XsErr> {
        self.pages.entry(domid).or_default();
        Ok(())
    }
    fn unmap_ring(&mut self, domid: u16) {
        self.unmapped.push(domid);
    }
    fn ring(&mut self, domid: u16) -> Option<&mut dyn RingMem> {
        self.pages.get_mut(&domid).map(|p| p as &mut dyn RingMem)
    }
    fn bind(&mut self, domid: u16, port: u32) -> Result<u32, XsErr> {
        Ok(u32::from(domid) * 100 + port)
    }
    fn unbind(&mut self, _local: u32) {}
    fn notify(&mut self, local: u32) {
        self.notified.push(local);
    }
    fn log(&mut self, line: &str) {
        self.logs.push(line.to_string());
    }
}

pub type D = Xenstored<Fake>;

pub fn daemon() -> (D, ConnId) {
    daemon_with(Quota::default())
}

pub fn daemon_with(q: Quota) -> (D, ConnId) {
    let mut d = Xenstored::new(Fake::default(), q);
    let c = d.connect_local();
    (d, c)
}

/// A local connection acting as unprivileged domain `n`.
pub fn domu(d: &mut D, n: u16) -> ConnId {
    d.connect_as(Caller::domu(n))
}

pub fn call(d: &mut D, c: ConnId, ty: u32, args: &[&str]) -> Result<Vec<u8>, XsErr> {
    d.call(c, ty, 0, &wire::cstrs(args))
}

pub fn write(d: &mut D, c: ConnId, path: &str, val: &str) -> Result<(), XsErr> {
    let mut p = wire::cstr(path);
    p.extend_from_slice(val.as_bytes());
    d.call(c, XS_WRITE, 0, &p).map(|_| ())
}

pub fn write_tx(d: &mut D, c: ConnId, tx: u32, path: &str, val: &str) -> Result<(), XsErr> {
    let mut p = wire::cstr(path);
    p.extend_from_slice(val.as_bytes());
    d.call(c, XS_WRITE, tx, &p).map(|_| ())
}

pub fn read(d: &mut D, c: ConnId, path: &str) -> Result<String, XsErr> {
    call(d, c, XS_READ, &[path]).map(|v| String::from_utf8(v).unwrap())
}

pub fn set_perms(d: &mut D, c: ConnId, path: &str, perms: &[&str]) -> Result<(), XsErr> {
    let mut a = vec![path];
    a.extend_from_slice(perms);
    call(d, c, XS_SET_PERMS, &a).map(|_| ())
}

pub fn get_perms(d: &mut D, c: ConnId, path: &str) -> Result<Vec<String>, XsErr> {
    call(d, c, XS_GET_PERMS, &[path]).map(|v| strings(&v))
}

pub fn dir(d: &mut D, c: ConnId, path: &str) -> Result<Vec<String>, XsErr> {
    call(d, c, XS_DIRECTORY, &[path]).map(|v| strings(&v))
}

pub fn strings(v: &[u8]) -> Vec<String> {
    if v.is_empty() {
        return Vec::new();
    }
    wire::strings(v)
        .unwrap()
        .into_iter()
        .map(String::from)
        .collect()
}

/// Introduce domain `n` (port 1) from dom0's connection.
pub fn introduce(d: &mut D, dom0: ConnId, n: u16) -> ConnId {
    call(d, dom0, XS_INTRODUCE, &[&n.to_string(), "4096", "1"]).unwrap();
    d.domain_conn(n).unwrap()
}

/// Guest side: put bytes into domain `n`'s request ring.
pub fn guest_send(d: &mut D, n: u16, bytes: &[u8]) -> usize {
    let m = d.platform.ring(n).unwrap();
    ring::client_write(m, bytes).unwrap_or(0)
}

/// Guest side: everything in the response ring, as messages.
pub fn guest_recv(d: &mut D, n: u16) -> Vec<Msg> {
    let mut all = d.platform.partial.remove(&n).unwrap_or_default();
    let mut buf = [0u8; 1024];
    loop {
        let m = d.platform.ring(n).unwrap();
        let got = ring::client_read(m, &mut buf).unwrap_or(0);
        if got == 0 {
            break;
        }
        all.extend_from_slice(&buf[..got]);
    }
    let mut out = Vec::new();
    let mut at = 0;
    while at + HDR <= all.len() {
        let h = wire::header(&all[at..]).unwrap();
        let end = at + HDR + h.len as usize;
        if end > all.len() {
            break;
        }
        out.push(Msg::new(h.r#type, h.req_id, h.tx_id, &all[at + HDR..end]));
        at = end;
    }
    d.platform.partial.insert(n, all[at..].to_vec());
    out
}

/// A full guest round trip: send, poll, receive.
pub fn guest_call(d: &mut D, n: u16, m: &Msg) -> Vec<Msg> {
    guest_send(d, n, &m.encode());
    d.poll(64);
    guest_recv(d, n)
}
