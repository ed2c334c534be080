//! What the toolstack writes into the store for a domain: libxl 4.17's layout
//! and permissions (`libxl__domain_make`, `libxl__build_post`,
//! `libxl__device_console_add` → `libxl__device_generic_add`), and device
//! teardown driven only by the toolstack's own records under
//! `/libxl/<domid>/device/<kind>/<devid>` (the XSA-175 lesson: never by
//! enumerating `~/device`, which the guest may be able to write).
//!
//! Permissions, as libxl names them (`N` the domain):
//! - `roperm` = `n0 rN`: the guest reads, only dom0 writes;
//! - `rwperm` = `nN`: the guest owns it (reads and writes);
//! - `noperm` = `n0`: dom0 only.

use alloc::string::String;
use alloc::vec::Vec;

use xen_public_abi::io::xs_wire::*;

use crate::daemon::{ConnId, Platform, Xenstored};
use crate::wire::{self, XsErr};

/// A domain as the toolstack built it.
#[derive(Clone, Debug)]
pub struct DomainLayout<'a> {
    pub domid: u16,
    pub name: &'a str,
    pub uuid: [u8; 16],
    pub max_memkb: u64,
    pub target_memkb: u64,
    pub vcpus: u32,
    pub store_port: u32,
    pub store_mfn: u64,
    pub console_port: u32,
    pub console_mfn: u64,
    /// The xl.cfg bug-compatibility option
    /// `workaround_old_guests_enumerating_device` (libxl's
    /// `xend_suspend_evtchn_compat`): no `device/suspend/event-channel` node,
    /// and `~/device` itself guest-writable. Off by default.
    pub old_guest_device_workaround: bool,
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn uuid_string(u: &[u8; 16]) -> String {
    let mut s = String::new();
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&alloc::format!("{b:02x}"));
    }
    s
}

/// A store client over a local (privileged) connection, in a transaction or not.
pub struct Client<'a, P: Platform> {
    pub xs: &'a mut Xenstored<P>,
    pub conn: ConnId,
    pub tx: u32,
}

impl<P: Platform> Client<'_, P> {
    fn op(&mut self, ty: u32, payload: &[u8]) -> Result<Vec<u8>, XsErr> {
        self.xs.call(self.conn, ty, self.tx, payload)
    }
    pub fn write(&mut self, path: &str, value: &str) -> Result<(), XsErr> {
        let mut p = wire::cstr(path);
        p.extend_from_slice(value.as_bytes());
        self.op(XS_WRITE, &p).map(|_| ())
    }
    pub fn read(&mut self, path: &str) -> Result<String, XsErr> {
        self.op(XS_READ, &wire::cstr(path))
            .map(|v| String::from_utf8_lossy(&v).into_owned())
    }
    pub fn rm(&mut self, path: &str) -> Result<(), XsErr> {
        self.op(XS_RM, &wire::cstr(path)).map(|_| ())
    }
    pub fn mkdir(&mut self, path: &str) -> Result<(), XsErr> {
        self.op(XS_MKDIR, &wire::cstr(path)).map(|_| ())
    }
    pub fn set_perms(&mut self, path: &str, perms: &[&str]) -> Result<(), XsErr> {
        let mut v: Vec<&str> = alloc::vec![path];
        v.extend_from_slice(perms);
        self.op(XS_SET_PERMS, &wire::cstrs(&v)).map(|_| ())
    }
    /// `libxl__xs_mknod`: an empty node with these permissions.
    pub fn mknod(&mut self, path: &str, perms: &[&str]) -> Result<(), XsErr> {
        self.write(path, "")?;
        self.set_perms(path, perms)
    }
    pub fn directory(&mut self, path: &str) -> Result<Vec<String>, XsErr> {
        let v = self.op(XS_DIRECTORY, &wire::cstr(path))?;
        Ok(wire::strings(&v)
            .unwrap_or_default()
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect())
    }
}

/// Run `f` in a transaction, again on `EAGAIN` (libxl's `retry_transaction`).
pub fn transaction<P: Platform>(
    xs: &mut Xenstored<P>,
    conn: ConnId,
    mut f: impl FnMut(&mut Client<P>) -> Result<(), XsErr>,
) -> Result<(), XsErr> {
    for _ in 0..16 {
        let id = xs.call(conn, XS_TRANSACTION_START, 0, b"\0")?;
        let id = wire::strings(&id)
            .and_then(|s| s.first().and_then(|s| wire::number(s)))
            .ok_or(XsErr::EIO)?;
        let mut c = Client { xs, conn, tx: id };
        if let Err(e) = f(&mut c) {
            let _ = xs.call(conn, XS_TRANSACTION_END, id, b"F\0");
            return Err(e);
        }
        match xs.call(conn, XS_TRANSACTION_END, id, b"T\0") {
            Err(XsErr::EAGAIN) => continue,
            r => return r.map(|_| ()),
        }
    }
    Err(XsErr::EAGAIN)
}

/// `libxl__domain_make` + `libxl__build_post` + console 0, then
/// `XS_INTRODUCE`: everything xl writes for a new domain.
pub fn create<P: Platform>(
    xs: &mut Xenstored<P>,
    conn: ConnId,
    d: &DomainLayout,
) -> Result<(), XsErr> {
    let n = d.domid;
    let dom = alloc::format!("/local/domain/{n}");
    let vm = alloc::format!("/vm/{}", uuid_string(&d.uuid));
    let libxl = alloc::format!("/libxl/{n}");
    let ro_s = alloc::format!("r{n}");
    let rw_s = alloc::format!("n{n}");
    let roperm: [&str; 2] = ["n0", &ro_s];
    let rwperm: [&str; 1] = [&rw_s];
    let noperm: [&str; 1] = ["n0"];
    transaction(xs, conn, |c| {
        let _ = c.rm(&dom); // libxl ignores xs_rm's result
        c.mknod(&dom, &roperm)?;
        let _ = c.rm(&vm); // libxl ignores xs_rm's result
        c.mknod(&vm, &roperm)?;
        let _ = c.rm(&libxl); // libxl ignores xs_rm's result
        c.mknod(&libxl, &noperm)?;
        c.mknod(&alloc::format!("{libxl}/device"), &noperm)?;
        c.write(&alloc::format!("{dom}/vm"), &vm)?;
        c.write(&alloc::format!("{dom}/name"), d.name)?;
        c.mknod(&alloc::format!("{dom}/cpu"), &roperm)?;
        c.mknod(&alloc::format!("{dom}/memory"), &roperm)?;
        if d.old_guest_device_workaround {
            c.mknod(&alloc::format!("{dom}/device"), &rwperm)?;
        } else {
            c.mknod(&alloc::format!("{dom}/device"), &roperm)?;
            c.mknod(
                &alloc::format!("{dom}/device/suspend/event-channel"),
                &rwperm,
            )?;
        }
        c.mknod(&alloc::format!("{dom}/control"), &roperm)?;
        for k in [
            "shutdown",
            "feature-poweroff",
            "feature-reboot",
            "feature-suspend",
            "sysrq",
        ] {
            c.mknod(&alloc::format!("{dom}/control/{k}"), &rwperm)?;
        }
        for k in ["data", "drivers", "feature", "attr", "error"] {
            c.mknod(&alloc::format!("{dom}/{k}"), &rwperm)?;
        }
        c.write(&alloc::format!("{vm}/uuid"), &uuid_string(&d.uuid))?;
        c.write(&alloc::format!("{vm}/name"), d.name)?;
        c.write(
            &alloc::format!("{dom}/control/platform-feature-multiprocessor-suspend"),
            "1",
        )?;
        c.write(
            &alloc::format!("{dom}/control/platform-feature-xs_reset_watches"),
            "1",
        )?;
        c.write(&alloc::format!("{libxl}/type"), "pvh")
    })?;
    // libxl__build_post.
    transaction(xs, conn, |c| {
        c.write(
            &alloc::format!("{dom}/memory/static-max"),
            &alloc::format!("{}", d.max_memkb),
        )?;
        c.write(
            &alloc::format!("{dom}/memory/target"),
            &alloc::format!("{}", d.target_memkb),
        )?;
        c.write(&alloc::format!("{dom}/memory/videoram"), "0")?;
        c.write(&alloc::format!("{dom}/domid"), &alloc::format!("{n}"))?;
        c.write(
            &alloc::format!("{dom}/store/port"),
            &alloc::format!("{}", d.store_port),
        )?;
        c.write(
            &alloc::format!("{dom}/store/ring-ref"),
            &alloc::format!("{}", d.store_mfn),
        )?;
        for i in 0..d.vcpus {
            c.write(&alloc::format!("{dom}/cpu/{i}/availability"), "online")?;
        }
        Ok(())
    })?;
    console0(xs, conn, d)?;
    let args = [
        alloc::format!("{n}"),
        alloc::format!("{}", d.store_mfn),
        alloc::format!("{}", d.store_port),
    ];
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    xs.call(conn, XS_INTRODUCE, 0, &wire::cstrs(&refs))
        .map(|_| ())
}

/// `libxl__device_console_add` for console 0 through
/// `libxl__device_generic_add`: the frontend is `~/console` (read-only to the
/// guest: `n0 rN`, as libxl does for console 0), the backend
/// `/local/domain/0/backend/console/N/0` (`n0 rN`), and the record
/// `/libxl/N/device/console/0`.
fn console0<P: Platform>(
    xs: &mut Xenstored<P>,
    conn: ConnId,
    d: &DomainLayout,
) -> Result<(), XsErr> {
    let n = d.domid;
    let front = alloc::format!("/local/domain/{n}/console");
    let back = alloc::format!("/local/domain/0/backend/console/{n}/0");
    let rec = alloc::format!("/libxl/{n}/device/console/0");
    let r_s = alloc::format!("r{n}");
    let ro_front: [&str; 2] = ["n0", &r_s];
    let backend_perms: [&str; 2] = ["n0", &r_s];
    let bents: [(&str, String); 4] = [
        ("frontend-id", alloc::format!("{n}")),
        ("online", String::from("1")),
        ("state", String::from("1")),
        ("protocol", String::from("vt100")),
    ];
    transaction(xs, conn, |c| {
        let _ = c.rm(&rec); // libxl ignores xs_rm's result
        c.write(&alloc::format!("{rec}/frontend"), &front)?;
        c.write(&alloc::format!("{rec}/backend"), &back)?;
        let _ = c.rm(&front); // libxl ignores xs_rm's result
        c.mkdir(&front)?;
        c.set_perms(&front, &ro_front)?;
        c.write(&alloc::format!("{front}/backend"), &back)?;
        // The frontend entries, `frontend_perms` (nN r0)...
        let f_s = alloc::format!("n{n}");
        c.write(&alloc::format!("{front}/backend-id"), "0")?;
        c.set_perms(&alloc::format!("{front}/backend-id"), &[&f_s, "r0"])?;
        // ...and the read-only ones, `ro_frontend_perms` (n0 rN).
        let ro_ents: [(&str, String); 6] = [
            ("limit", String::from("1048576")),
            ("type", String::from("xenconsoled")),
            ("output", String::from("pty")),
            ("tty", String::new()),
            ("port", alloc::format!("{}", d.console_port)),
            ("ring-ref", alloc::format!("{}", d.console_mfn)),
        ];
        for (k, v) in &ro_ents {
            let p = alloc::format!("{front}/{k}");
            c.write(&p, v)?;
            c.set_perms(&p, &ro_front)?;
        }
        let _ = c.rm(&back); // libxl ignores xs_rm's result
        c.mkdir(&back)?;
        c.set_perms(&back, &backend_perms)?;
        c.write(&alloc::format!("{back}/frontend"), &front)?;
        for (k, v) in &bents {
            c.write(&alloc::format!("{back}/{k}"), v)?;
            c.write(&alloc::format!("{rec}/{k}"), v)?;
        }
        Ok(())
    })
}

/// Destroy: remove each device the toolstack recorded under
/// `/libxl/N/device` (its frontend and backend paths as *recorded there*,
/// never as the guest's `~/device` says), then `~`, `/vm/UUID`, `/libxl/N`,
/// and `XS_RELEASE`. Returns the devices removed (`kind/devid`).
pub fn destroy<P: Platform>(
    xs: &mut Xenstored<P>,
    conn: ConnId,
    domid: u16,
) -> Result<Vec<String>, XsErr> {
    let libxl = alloc::format!("/libxl/{domid}");
    let dom = alloc::format!("/local/domain/{domid}");
    let mut c = Client { xs, conn, tx: 0 };
    let vm = c.read(&alloc::format!("{dom}/vm")).ok();
    let mut removed = Vec::new();
    let kinds = c
        .directory(&alloc::format!("{libxl}/device"))
        .unwrap_or_default();
    for kind in kinds {
        let devs = c
            .directory(&alloc::format!("{libxl}/device/{kind}"))
            .unwrap_or_default();
        for devid in devs {
            let rec = alloc::format!("{libxl}/device/{kind}/{devid}");
            for end in ["frontend", "backend"] {
                if let Ok(p) = c.read(&alloc::format!("{rec}/{end}")) {
                    // A record names paths of this domain or its backend's
                    // backend directory; anything else is not ours to remove.
                    if recorded_path_ok(&p, domid) {
                        let _ = c.rm(&p);
                        // libxl__xs_path_cleanup: the backend's now empty
                        // `backend/KIND/N` goes too.
                        if let Some((parent, _)) = crate::store::split(&p) {
                            if end == "backend" && c.directory(parent).is_ok_and(|v| v.is_empty()) {
                                let _ = c.rm(parent);
                            }
                        }
                    }
                }
            }
            removed.push(alloc::format!("{kind}/{devid}"));
        }
    }
    let _ = c.rm(&dom);
    if let Some(vm) = vm {
        if vm.starts_with("/vm/") {
            let _ = c.rm(&vm);
        }
    }
    let _ = c.rm(&libxl);
    let _ = xs.call(conn, XS_RELEASE, 0, &wire::cstr(&alloc::format!("{domid}")));
    Ok(removed)
}

/// A frontend under `/local/domain/N/`, or a backend
/// `/local/domain/B/backend/KIND/N/DEVID` for this domain.
fn recorded_path_ok(p: &str, domid: u16) -> bool {
    let own = alloc::format!("/local/domain/{domid}/");
    if p.starts_with(&own) {
        return true;
    }
    let parts: Vec<&str> = p.split('/').collect();
    parts.len() == 8
        && parts[1] == "local"
        && parts[2] == "domain"
        && parts[4] == "backend"
        && parts[6] == alloc::format!("{domid}")
}
