//! libxl's layout and permissions, the suspend-node option, and XSA-175:
//! teardown from the toolstack's records only.

mod common;
use common::*;
use xen_public_abi::io::xs_wire::*;
use xenstored::layout::{self, DomainLayout};
use xenstored::perms::Caller;
use xenstored::XsErr;

fn dl(domid: u16, workaround: bool) -> DomainLayout<'static> {
    DomainLayout {
        domid,
        name: if domid == 3 { "web" } else { "db" },
        uuid: [domid as u8; 16],
        max_memkb: 16384,
        target_memkb: 16384,
        vcpus: 2,
        store_port: 1,
        store_mfn: 0xfeffc,
        console_port: 2,
        console_mfn: 0xfefff,
        old_guest_device_workaround: workaround,
    }
}

fn setup(workaround: bool) -> (D, u32) {
    let (mut d, dom0) = daemon();
    write(&mut d, dom0, "/local/domain/0", "").unwrap();
    layout::create(&mut d, dom0, &dl(3, workaround)).unwrap();
    layout::create(&mut d, dom0, &dl(4, false)).unwrap();
    (d, dom0)
}

/// Every node domain `n` may write (it owns it, or an entry gives it w).
fn writable(d: &D, n: u16) -> Vec<String> {
    let c = Caller::domu(n);
    let mut v: Vec<String> = d
        .store
        .paths()
        .filter(|p| d.store.get(p).unwrap().perms.rights(&c).write)
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn expected_writable(workaround: bool) -> Vec<String> {
    let mut v: Vec<String> = [
        "control/shutdown",
        "control/feature-poweroff",
        "control/feature-reboot",
        "control/feature-suspend",
        "control/sysrq",
        "data",
        "drivers",
        "feature",
        "attr",
        "error",
        "console/backend-id",
    ]
    .iter()
    .map(|s| format!("/local/domain/3/{s}"))
    .collect();
    if workaround {
        v.push("/local/domain/3/device".into());
    } else {
        v.push("/local/domain/3/device/suspend/event-channel".into());
    }
    v.sort();
    v
}

#[test]
fn libxl_layout_and_permissions() {
    let (mut d, dom0) = setup(false);
    let p = |d: &mut D, path: &str| get_perms(d, dom0, path).unwrap();
    assert_eq!(p(&mut d, "/local/domain/3"), ["n0", "r3"]);
    assert_eq!(p(&mut d, "/local/domain/3/device"), ["n0", "r3"]);
    assert_eq!(
        p(&mut d, "/local/domain/3/device/suspend/event-channel"),
        ["n3"]
    );
    assert_eq!(p(&mut d, "/local/domain/3/device/suspend"), ["n0", "r3"]);
    assert_eq!(p(&mut d, "/local/domain/3/control/shutdown"), ["n3"]);
    assert_eq!(p(&mut d, "/local/domain/3/memory/target"), ["n0", "r3"]);
    assert_eq!(p(&mut d, "/local/domain/3/console"), ["n0", "r3"]);
    assert_eq!(p(&mut d, "/local/domain/3/console/ring-ref"), ["n0", "r3"]);
    assert_eq!(p(&mut d, "/libxl/3"), ["n0"]);
    assert_eq!(p(&mut d, "/libxl/3/device/console/0/backend"), ["n0"]);
    assert_eq!(
        p(&mut d, "/local/domain/0/backend/console/3/0"),
        ["n0", "r3"]
    );
    let uuid = "03030303-0303-0303-0303-030303030303";
    assert_eq!(
        read(&mut d, dom0, "/local/domain/3/vm").unwrap(),
        format!("/vm/{uuid}")
    );
    assert_eq!(p(&mut d, &format!("/vm/{uuid}")), ["n0", "r3"]);
    for (k, v) in [
        ("name", "web"),
        ("domid", "3"),
        ("memory/static-max", "16384"),
        ("memory/target", "16384"),
        ("store/port", "1"),
        ("store/ring-ref", "1044476"),
        ("cpu/1/availability", "online"),
        ("console/port", "2"),
        ("console/ring-ref", "1044479"),
        ("console/type", "xenconsoled"),
        ("console/backend", "/local/domain/0/backend/console/3/0"),
        ("control/platform-feature-xs_reset_watches", "1"),
    ] {
        assert_eq!(
            read(&mut d, dom0, &format!("/local/domain/3/{k}")).unwrap(),
            v,
            "{k}"
        );
    }
    assert_eq!(read(&mut d, dom0, "/libxl/3/type").unwrap(), "pvh");
    assert_eq!(
        call(&mut d, dom0, XS_IS_DOMAIN_INTRODUCED, &["3"]).unwrap(),
        b"T\0"
    );
    assert_eq!(writable(&d, 3), expected_writable(false));
    // The guest's view: its own nodes yes, others' and /libxl no.
    let g = d.domain_conn(3).unwrap();
    assert_eq!(read(&mut d, g, "name").unwrap(), "web");
    assert_eq!(read(&mut d, g, "/local/domain/4/name"), Err(XsErr::EACCES));
    assert_eq!(read(&mut d, g, "/libxl/3/type"), Err(XsErr::EACCES));
    assert_eq!(
        write(&mut d, g, "device/vif/0/backend", "x"),
        Err(XsErr::EACCES)
    );
    write(&mut d, g, "device/suspend/event-channel", "5").unwrap();
    write(&mut d, g, "data/x", "1").unwrap();
    assert_eq!(write(&mut d, g, "name", "evil"), Err(XsErr::EACCES));
    d.store.check().unwrap();
}

#[test]
fn old_guest_workaround_option() {
    let (mut d, dom0) = setup(true);
    assert_eq!(
        get_perms(&mut d, dom0, "/local/domain/3/device").unwrap(),
        ["n3"]
    );
    assert_eq!(
        read(&mut d, dom0, "/local/domain/3/device/suspend"),
        Err(XsErr::ENOENT)
    );
    assert_eq!(writable(&d, 3), expected_writable(true));
    // The other domain (default) keeps the node and a read-only ~/device.
    assert_eq!(
        get_perms(&mut d, dom0, "/local/domain/4/device").unwrap(),
        ["n0", "r4"]
    );
    let g = d.domain_conn(3).unwrap();
    write(&mut d, g, "device/vif/0/backend", "x").unwrap();
}

#[test]
fn xsa175_teardown_from_records_only() {
    let (mut d, dom0) = setup(true);
    let before4: Vec<(String, String)> = d
        .store
        .paths()
        .filter(|p| p.contains("/4") || p.starts_with("/local/domain/0"))
        .filter(|p| !p.contains("/3"))
        .map(|p| {
            let n = d.store.get(p).unwrap();
            (p.to_string(), format!("{:?} {:?}", n.value, n.perms))
        })
        .collect();
    // The hostile guest: bogus devices pointing at the other domain's and
    // dom0's nodes, and its console's backend pointer is dom0's (read-only)
    // so it tries to rewrite what it can.
    let g = d.domain_conn(3).unwrap();
    for (k, v) in [
        (
            "device/vif/0/backend",
            "/local/domain/0/backend/console/4/0",
        ),
        ("device/vbd/51712/backend", "/local/domain/4"),
        ("device/console/1/backend", "/libxl/4"),
        ("device/vif/1/backend", "/local/domain/0"),
    ] {
        write(&mut d, g, k, v).unwrap();
    }
    assert_eq!(
        write(
            &mut d,
            g,
            "console/backend",
            "/local/domain/0/backend/console/4/0"
        ),
        Err(XsErr::EACCES)
    );
    let removed = layout::destroy(&mut d, dom0, 3).unwrap();
    assert_eq!(removed, ["console/0"]);
    assert!(d.store.paths().all(|p| !p.starts_with("/local/domain/3")));
    assert!(d.store.paths().all(|p| !p.starts_with("/libxl/3")));
    assert!(d
        .store
        .paths()
        .all(|p| !p.starts_with("/local/domain/0/backend/console/3")));
    assert!(d.store.paths().all(|p| !p.starts_with("/vm/03030303")));
    let after4: Vec<(String, String)> = d
        .store
        .paths()
        .filter(|p| p.contains("/4") || p.starts_with("/local/domain/0"))
        .filter(|p| !p.contains("/3"))
        .map(|p| {
            let n = d.store.get(p).unwrap();
            (p.to_string(), format!("{:?} {:?}", n.value, n.perms))
        })
        .collect();
    assert_eq!(before4, after4, "nothing of d4's or dom0's changed");
    assert_eq!(
        call(&mut d, dom0, XS_IS_DOMAIN_INTRODUCED, &["3"]).unwrap(),
        b"F\0"
    );
    // dom0 keeps serving d4.
    let g4 = d.domain_conn(4).unwrap();
    assert_eq!(read(&mut d, g4, "name").unwrap(), "db");
    d.store.check().unwrap();
}

#[test]
fn records_pointing_elsewhere_are_not_followed() {
    // Even a (dom0-written) record naming another domain's path is refused.
    let (mut d, dom0) = setup(false);
    write(
        &mut d,
        dom0,
        "/libxl/3/device/vif/0/frontend",
        "/local/domain/4/name",
    )
    .unwrap();
    write(
        &mut d,
        dom0,
        "/libxl/3/device/vif/0/backend",
        "/local/domain/0/backend/vif/4/0",
    )
    .unwrap();
    write(&mut d, dom0, "/local/domain/0/backend/vif/4/0/state", "4").unwrap();
    let removed = layout::destroy(&mut d, dom0, 3).unwrap();
    assert_eq!(removed, ["console/0", "vif/0"]);
    assert_eq!(read(&mut d, dom0, "/local/domain/4/name").unwrap(), "db");
    assert_eq!(
        read(&mut d, dom0, "/local/domain/0/backend/vif/4/0/state").unwrap(),
        "4"
    );
}
