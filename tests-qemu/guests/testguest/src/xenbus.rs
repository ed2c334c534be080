//! A minimal xenbus client for the domUs of the `xenstore` and `xsa175`
//! scenarios: the store page and event channel from `HVM_PARAM_STORE_PFN` /
//! `_EVTCHN`, requests written into the request ring, the event channel
//! kicked, replies (and watch events) read back by polling. Then the two
//! scenario bodies: `xenstore` (the domain's own nodes yes, others' and
//! `/libxl` no, watches fire, a transaction commits) and `xsa175` (a hostile
//! domain writes bogus device entries and repoints backends).

use alloc::string::String;
use alloc::vec::Vec;

use guest_rt::report::check;
use guest_rt::{evtchn, println, xen, Boot};
use xen_public_abi::hvm::params::{HVM_PARAM_STORE_EVTCHN, HVM_PARAM_STORE_PFN};
use xen_public_abi::io::xs_wire::*;
use xenctrl::Xc;
use xenstored::ring;
use xenstored::wire::{self, Msg, XsErr, HDR};

use crate::xl_role::GuestHc;
use crate::xs_dom0::Page;

/// The connection to xenstored.
pub struct Xenbus {
    page: Page,
    port: u32,
    next_id: u32,
    inbuf: Vec<u8>,
    /// Watch events received, (path, token).
    pub events: Vec<(String, String)>,
}

impl Xenbus {
    pub fn open() -> Result<Xenbus, String> {
        let mut xc = Xc::new(GuestHc);
        let me = xen_public_abi::xen::DOMID_SELF;
        let pfn = xc
            .hvm_param_get(me, HVM_PARAM_STORE_PFN)
            .map_err(|e| alloc::format!("STORE_PFN: {e}"))?;
        let port = xc
            .hvm_param_get(me, HVM_PARAM_STORE_EVTCHN)
            .map_err(|e| alloc::format!("STORE_EVTCHN: {e}"))?;
        Ok(Xenbus {
            page: Page((pfn << 12) as *mut u8),
            port: port as u32,
            next_id: 1,
            inbuf: Vec::new(),
            events: Vec::new(),
        })
    }

    /// Read whatever replies are there; a complete message if one is.
    fn take(&mut self) -> Option<Msg> {
        let mut buf = [0u8; 256];
        if let Ok(n) = ring::client_read(&mut self.page, &mut buf) {
            self.inbuf.extend_from_slice(&buf[..n]);
        }
        let h = wire::header(&self.inbuf)?;
        let end = HDR + h.len as usize;
        if self.inbuf.len() < end {
            return None;
        }
        let m = Msg::new(h.r#type, h.req_id, h.tx_id, &self.inbuf[HDR..end]);
        self.inbuf.drain(..end);
        Some(m)
    }

    /// One request and its reply (watch events seen meanwhile are kept).
    pub fn call(&mut self, ty: u32, tx: u32, payload: &[u8]) -> Result<Vec<u8>, XsErr> {
        let id = self.next_id;
        self.next_id += 1;
        let bytes = Msg::new(ty, id, tx, payload).encode();
        let mut sent = 0;
        for _ in 0..2_000_000 {
            if sent < bytes.len() {
                sent += ring::client_write(&mut self.page, &bytes[sent..]).unwrap_or(0);
                evtchn::send(self.port);
            }
            while let Some(m) = self.take() {
                if m.ty == XS_WATCH_EVENT {
                    if let Some(s) = wire::strings(&m.payload) {
                        if s.len() == 2 {
                            self.events.push((s[0].into(), s[1].into()));
                        }
                    }
                } else if m.req_id == id {
                    return m.result().map(<[u8]>::to_vec);
                }
            }
            xen::yield_now();
        }
        Err(XsErr::EIO)
    }

    pub fn read(&mut self, path: &str) -> Result<String, XsErr> {
        self.call(XS_READ, 0, &wire::cstr(path))
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    pub fn write(&mut self, path: &str, value: &str) -> Result<(), XsErr> {
        let mut p = wire::cstr(path);
        p.extend_from_slice(value.as_bytes());
        self.call(XS_WRITE, 0, &p).map(|_| ())
    }

    /// Wait (polling) for a watch event with this token.
    pub fn wait_event(&mut self, token: &str) -> Option<(String, String)> {
        for _ in 0..2_000_000 {
            if let Some(i) = self.events.iter().position(|e| e.1 == token) {
                return Some(self.events.remove(i));
            }
            while let Some(m) = self.take() {
                if let Some(s) = wire::strings(&m.payload) {
                    if m.ty == XS_WATCH_EVENT && s.len() == 2 {
                        self.events.push((s[0].into(), s[1].into()));
                    }
                }
            }
            xen::yield_now();
        }
        None
    }
}

/// `xenstore`: what a domain may and may not do in the store.
pub fn xenstore(boot: &Boot) {
    const S: &str = "xenstore";
    let name = boot.arg("name").unwrap_or("?");
    let peer = boot.arg("peer").unwrap_or("1");
    let mut xb = match Xenbus::open() {
        Ok(x) => x,
        Err(e) => return check(S, "open", false, format_args!("{e}")),
    };
    let got = xb.read("name");
    check(
        S,
        "name",
        got.as_deref() == Ok(name),
        format_args!("{got:?}"),
    );
    let domid = xb.read("domid");
    check(S, "domid", domid.is_ok(), format_args!("{domid:?}"));
    let domid = domid.unwrap_or_default();
    let path = xb.call(XS_GET_DOMAIN_PATH, 0, &wire::cstr(&domid));
    let want = alloc::format!("/local/domain/{domid}\0");
    check(
        S,
        "path",
        path.as_deref() == Ok(want.as_bytes()),
        format_args!("{path:?}"),
    );
    let r = xb.read("console/type");
    check(
        S,
        "console",
        r.as_deref() == Ok("xenconsoled"),
        format_args!("{r:?}"),
    );
    let r = xb.read(&alloc::format!("/local/domain/{peer}/name"));
    check(S, "others", r == Err(XsErr::EACCES), format_args!("{r:?}"));
    let r = xb.read("/local/domain/0/name");
    check(S, "dom0", r == Err(XsErr::EACCES), format_args!("{r:?}"));
    let r = xb.read(&alloc::format!("/libxl/{domid}/type"));
    check(S, "libxl", r == Err(XsErr::EACCES), format_args!("{r:?}"));
    let r = xb.call(XS_DIRECTORY, 0, b"/libxl\0");
    check(
        S,
        "libxl-dir",
        r == Err(XsErr::EACCES),
        format_args!("{r:?}"),
    );
    let r = xb.write("name", "evil");
    check(S, "name-ro", r == Err(XsErr::EACCES), format_args!("{r:?}"));
    let r = xb.write("device/vif/0/backend", "x");
    check(
        S,
        "device-ro",
        r == Err(XsErr::EACCES),
        format_args!("{r:?}"),
    );
    let r = xb.write("data/hello", "world");
    let back = xb.read("data/hello");
    check(
        S,
        "data",
        r.is_ok() && back.as_deref() == Ok("world"),
        format_args!("{r:?} {back:?}"),
    );
    // Watches: the first event at once, then one per change.
    let r = xb.call(XS_WATCH, 0, &wire::cstrs(&["data", "tok"]));
    let first = xb.wait_event("tok");
    check(
        S,
        "watch",
        r.is_ok() && first.as_ref().is_some_and(|e| e.0 == "data"),
        format_args!("{r:?} {first:?}"),
    );
    let _ = xb.write("data/w", "1");
    let ev = xb.wait_event("tok");
    check(
        S,
        "watch-fires",
        ev.as_ref().is_some_and(|e| e.0 == "data/w"),
        format_args!("{ev:?}"),
    );
    // A transaction.
    let t = xb
        .call(XS_TRANSACTION_START, 0, b"\0")
        .ok()
        .and_then(|v| wire::strings(&v).and_then(|s| s.first().and_then(|s| wire::number(s))));
    let ok = t.is_some_and(|t| {
        let mut p = wire::cstr("data/tx");
        p.extend_from_slice(b"committed");
        xb.call(XS_WRITE, t, &p).is_ok() && xb.call(XS_TRANSACTION_END, t, b"T\0").is_ok()
    });
    let v = xb.read("data/tx");
    check(
        S,
        "tx",
        ok && v.as_deref() == Ok("committed"),
        format_args!("{t:?} {v:?}"),
    );
    println!("xenstore: {name} done");
    guest_rt::report::summary(S, name);
}

/// `xsa175`: the hostile domain (created with the old-guest workaround, so
/// `~/device` is writable) plants bogus devices whose backends point at other
/// domains' and dom0's nodes, and tries to repoint its console.
pub fn xsa175(_boot: &Boot) {
    const S: &str = "xsa175";
    let mut xb = match Xenbus::open() {
        Ok(x) => x,
        Err(e) => return check(S, "open", false, format_args!("{e}")),
    };
    let planted = [
        (
            "device/vif/0/backend",
            "/local/domain/0/backend/console/2/0",
        ),
        ("device/vif/0/frontend", "/local/domain/2"),
        ("device/vbd/51712/backend", "/local/domain/2"),
        ("device/console/1/backend", "/libxl/2"),
        ("device/vkbd/0/backend", "/local/domain/0"),
        ("device/suspend/event-channel/extra", "1"),
    ];
    let all = planted.iter().all(|(k, v)| xb.write(k, v).is_ok());
    check(S, "plant", all, format_args!("a write failed"));
    let r = xb.write("console/backend", "/local/domain/0/backend/console/2/0");
    check(
        S,
        "console-ro",
        r == Err(XsErr::EACCES),
        format_args!("{r:?}"),
    );
    // A flood of requests dom0 must survive: each allocates a few KB in dom0
    // (payload, value, node copies), several MB in all, more than dom0's
    // 2 MiB heap, so dom0 must reuse what it frees.
    let mut flood_ok = 0;
    for i in 0..400u32 {
        if xb.write("data/flood", &alloc::format!("{i:0>900}")).is_ok() {
            flood_ok += 1;
        }
    }
    check(
        S,
        "flood",
        flood_ok == 400,
        format_args!("{flood_ok} of 400 writes answered"),
    );
    println!("xsa175: hostile domain planted its entries");
    guest_rt::report::summary(S, "hostile");
}
