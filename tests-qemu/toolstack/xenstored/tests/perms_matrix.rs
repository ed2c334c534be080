//! The permission matrix: owner / other / privileged × n/r/w/b (as the
//! default entry and as a per-domain entry) × read / write / mkdir / rm /
//! set_perms / watch.

mod common;
use common::*;
use xen_public_abi::io::xs_wire::*;
use xenstored::XsErr;

const OWNER: u16 = 1;
const OTHER: u16 = 2;

#[derive(Clone, Copy, Debug)]
enum Who {
    Owner,
    Other,
    Privileged,
}

/// Fresh store: /t (dom0-only), /t/x owned by OWNER with `perms`.
fn setup(perms: &[&str]) -> (D, u32, u32, u32) {
    let (mut d, dom0) = daemon();
    write(&mut d, dom0, "/t", "").unwrap();
    write(&mut d, dom0, "/t/x", "v").unwrap();
    write(&mut d, dom0, "/t/x/kid", "k").unwrap();
    set_perms(&mut d, dom0, "/t/x/kid", perms).unwrap();
    set_perms(&mut d, dom0, "/t/x", perms).unwrap();
    let o = domu(&mut d, OWNER);
    let x = domu(&mut d, OTHER);
    (d, dom0, o, x)
}

fn conn(w: Who, dom0: u32, o: u32, x: u32) -> u32 {
    match w {
        Who::Owner => o,
        Who::Other => x,
        Who::Privileged => dom0,
    }
}

fn check(perms: &[&str], letter: char) {
    let r = matches!(letter, 'r' | 'b');
    let w = matches!(letter, 'w' | 'b');
    for who in [Who::Owner, Who::Other, Who::Privileged] {
        let full = !matches!(who, Who::Other);
        let want = |ok: bool| if ok { Ok(()) } else { Err(XsErr::EACCES) };
        let ctx = format!("{perms:?} {who:?}");

        let (mut d, dom0, o, x) = setup(perms);
        let c = conn(who, dom0, o, x);
        assert_eq!(
            read(&mut d, c, "/t/x").map(|_| ()),
            want(full || r),
            "read {ctx}"
        );
        assert_eq!(
            dir(&mut d, c, "/t/x").map(|_| ()),
            want(full || r),
            "directory {ctx}"
        );
        assert_eq!(
            get_perms(&mut d, c, "/t/x").map(|_| ()),
            want(full || r),
            "get_perms {ctx}"
        );
        assert_eq!(
            write(&mut d, c, "/t/x", "new"),
            want(full || w),
            "write {ctx}"
        );
        assert_eq!(
            call(&mut d, c, XS_MKDIR, &["/t/x/sub"]).map(|_| ()),
            want(full || w),
            "mkdir {ctx}"
        );
        // A mkdir of an existing node needs write too.
        assert_eq!(
            call(&mut d, c, XS_MKDIR, &["/t/x"]).map(|_| ()),
            want(full || w),
            "mkdir existing {ctx}"
        );
        // set_perms needs ownership: never for the other domain, whatever it may do.
        let same_owner = perms.to_vec();
        assert_eq!(
            set_perms(&mut d, c, "/t/x/kid", &same_owner),
            want(full),
            "set_perms {ctx}"
        );
        assert_eq!(
            call(&mut d, c, XS_RM, &["/t/x"]).map(|_| ()),
            want(full || w),
            "rm {ctx}"
        );
        let gone = read(&mut d, dom0, "/t/x");
        assert_eq!(gone.is_err(), full || w, "rm effect {ctx}");

        // Watch: registering always works; a change fires only for readers.
        let (mut d, dom0, o, x) = setup(perms);
        let c = conn(who, dom0, o, x);
        call(&mut d, c, XS_WATCH, &["/t/x", "tok"]).unwrap();
        assert_eq!(
            d.take_events(c),
            vec![("/t/x".into(), "tok".into())],
            "first event {ctx}"
        );
        write(&mut d, dom0, "/t/x", "changed").unwrap();
        let got = d.take_events(c);
        assert_eq!(!got.is_empty(), full || r, "watch event {ctx}: {got:?}");
    }
}

#[test]
fn default_entry_matrix() {
    for l in ['n', 'r', 'w', 'b'] {
        let p = format!("{l}{OWNER}");
        check(&[&p], l);
    }
}

#[test]
fn per_domain_entry_matrix() {
    for l in ['n', 'r', 'w', 'b'] {
        let owner = format!("n{OWNER}");
        let entry = format!("{l}{OTHER}");
        check(&[&owner, &entry], l);
        // A per-domain entry for someone else does not help OTHER.
        let (mut d, _, _, x) = setup(&[&owner, &format!("b{}", 7)]);
        assert_eq!(read(&mut d, x, "/t/x"), Err(XsErr::EACCES));
    }
}

#[test]
fn unprivileged_creator_owns_and_inherits() {
    let (mut d, dom0) = daemon();
    write(&mut d, dom0, "/t", "").unwrap();
    set_perms(&mut d, dom0, "/t", &["n0", "b2", "r3"]).unwrap();
    let x = domu(&mut d, 2);
    write(&mut d, x, "/t/a/b", "1").unwrap();
    assert_eq!(
        get_perms(&mut d, dom0, "/t/a/b").unwrap(),
        ["n2", "b2", "r3"]
    );
    assert_eq!(get_perms(&mut d, dom0, "/t/a").unwrap(), ["n2", "b2", "r3"]);
    // dom0 creating keeps the parent's owner.
    write(&mut d, dom0, "/t/c", "1").unwrap();
    assert_eq!(get_perms(&mut d, dom0, "/t/c").unwrap(), ["n0", "b2", "r3"]);
    // Domain 3 may read what 2 created (inherited r3), not write.
    let y = domu(&mut d, 3);
    assert_eq!(read(&mut d, y, "/t/a/b").unwrap(), "1");
    assert_eq!(write(&mut d, y, "/t/a/b", "2"), Err(XsErr::EACCES));
}

#[test]
fn only_privileged_changes_owner() {
    let (mut d, dom0) = daemon();
    write(&mut d, dom0, "/t", "").unwrap();
    set_perms(&mut d, dom0, "/t", &["n1"]).unwrap();
    let o = domu(&mut d, 1);
    assert_eq!(set_perms(&mut d, o, "/t", &["n2"]), Err(XsErr::EPERM));
    set_perms(&mut d, o, "/t", &["r1", "b2"]).unwrap();
    set_perms(&mut d, dom0, "/t", &["n2"]).unwrap();
    assert_eq!(get_perms(&mut d, dom0, "/t").unwrap(), ["n2"]);
    assert_eq!(set_perms(&mut d, o, "/t", &["n1"]), Err(XsErr::EACCES));
    // Malformed permission strings.
    assert_eq!(set_perms(&mut d, dom0, "/t", &["x1"]), Err(XsErr::EINVAL));
    assert_eq!(set_perms(&mut d, dom0, "/t", &["r"]), Err(XsErr::EINVAL));
    assert_eq!(
        set_perms(&mut d, dom0, "/t", &["r70000"]),
        Err(XsErr::EINVAL)
    );
    assert_eq!(
        call(&mut d, dom0, XS_SET_PERMS, &["/t"]),
        Err(XsErr::EINVAL)
    );
}

#[test]
fn enoent_only_where_the_parent_is_visible() {
    let (mut d, dom0) = daemon();
    write(&mut d, dom0, "/hidden/x", "").unwrap();
    write(&mut d, dom0, "/open", "").unwrap();
    set_perms(&mut d, dom0, "/open", &["r0"]).unwrap();
    let x = domu(&mut d, 5);
    assert_eq!(read(&mut d, x, "/hidden/nope"), Err(XsErr::EACCES));
    assert_eq!(read(&mut d, x, "/open/nope"), Err(XsErr::ENOENT));
    assert_eq!(read(&mut d, x, "/open/a/b/c"), Err(XsErr::ENOENT));
    // Creating under a read-only parent: EACCES.
    assert_eq!(write(&mut d, x, "/open/new", "1"), Err(XsErr::EACCES));
    // rm of a missing node whose parent exists is fine (as 4.17).
    assert_eq!(
        call(&mut d, dom0, XS_RM, &["/open/none"]).map(|_| ()),
        Ok(())
    );
    assert_eq!(
        call(&mut d, dom0, XS_RM, &["/none/none"]),
        Err(XsErr::ENOENT)
    );
    assert_eq!(call(&mut d, dom0, XS_RM, &["/"]), Err(XsErr::EINVAL));
}

#[test]
fn relative_paths_and_domain_path() {
    let (mut d, dom0) = daemon();
    write(&mut d, dom0, "/local/domain/4", "").unwrap();
    set_perms(&mut d, dom0, "/local/domain/4", &["n4"]).unwrap();
    let g = domu(&mut d, 4);
    write(&mut d, g, "data/x", "7").unwrap();
    assert_eq!(read(&mut d, dom0, "/local/domain/4/data/x").unwrap(), "7");
    assert_eq!(read(&mut d, g, "data/x").unwrap(), "7");
    assert_eq!(
        call(&mut d, g, XS_GET_DOMAIN_PATH, &["4"]).unwrap(),
        b"/local/domain/4\0"
    );
    // Relative watch: relative event paths.
    call(&mut d, g, XS_WATCH, &["data", "t"]).unwrap();
    d.take_events(g);
    write(&mut d, dom0, "/local/domain/4/data/y", "1").unwrap();
    assert_eq!(d.take_events(g), vec![("data/y".into(), "t".into())]);
    // Invalid names.
    for bad in ["/a/", "/a//b", "/a b", "", "/é"] {
        assert_eq!(write(&mut d, dom0, bad, "1"), Err(XsErr::EINVAL), "{bad:?}");
    }
    let long = format!("/local/domain/4/{}", "a".repeat(2048));
    write(&mut d, dom0, &long, "").unwrap();
    let too_long = format!("/local/domain/4/{}", "a".repeat(2049));
    assert_eq!(write(&mut d, dom0, &too_long, ""), Err(XsErr::EINVAL));
}
