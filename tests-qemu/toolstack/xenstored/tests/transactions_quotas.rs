//! Transactions and conflicts, quotas, special watches, domain messages.

mod common;
use common::*;
use xen_public_abi::io::xs_wire::*;
use xenstored::quota::Quota;
use xenstored::XsErr;

fn start(d: &mut D, c: u32) -> u32 {
    let v = d.call(c, XS_TRANSACTION_START, 0, b"\0").unwrap();
    std::str::from_utf8(&v[..v.len() - 1])
        .unwrap()
        .parse()
        .unwrap()
}

fn end(d: &mut D, c: u32, tx: u32, commit: bool) -> Result<(), XsErr> {
    d.call(
        c,
        XS_TRANSACTION_END,
        tx,
        if commit { b"T\0" } else { b"F\0" },
    )
    .map(|_| ())
}

#[test]
fn transaction_isolated_until_commit() {
    let (mut d, a) = daemon();
    let b = d.connect_local();
    write(&mut d, a, "/k", "0").unwrap();
    let t = start(&mut d, a);
    write_tx(&mut d, a, t, "/k", "1").unwrap();
    write_tx(&mut d, a, t, "/new/deep", "x").unwrap();
    assert_eq!(read(&mut d, b, "/k").unwrap(), "0");
    assert_eq!(read(&mut d, b, "/new"), Err(XsErr::ENOENT));
    let r = d.call(a, XS_READ, t, b"/k\0").unwrap();
    assert_eq!(r, b"1");
    call(&mut d, b, XS_WATCH, &["/k", "w"]).unwrap();
    d.take_events(b);
    end(&mut d, a, t, true).unwrap();
    assert_eq!(read(&mut d, b, "/k").unwrap(), "1");
    assert_eq!(read(&mut d, b, "/new/deep").unwrap(), "x");
    // The transaction's events fire at commit.
    assert_eq!(d.take_events(b), vec![("/k".into(), "w".into())]);
    d.store.check().unwrap();
}

#[test]
fn abort_discards() {
    let (mut d, a) = daemon();
    let t = start(&mut d, a);
    write_tx(&mut d, a, t, "/gone", "1").unwrap();
    end(&mut d, a, t, false).unwrap();
    assert_eq!(read(&mut d, a, "/gone"), Err(XsErr::ENOENT));
    // The id is gone.
    assert_eq!(end(&mut d, a, t, true), Err(XsErr::ENOENT));
    assert_eq!(d.call(a, XS_READ, 999, b"/\0"), Err(XsErr::ENOENT));
    assert_eq!(
        d.call(a, XS_TRANSACTION_START, 999, b"\0"),
        Err(XsErr::ENOENT)
    );
    assert_eq!(
        d.call(a, XS_GET_DOMAIN_PATH, 999, b"1\0"),
        Err(XsErr::ENOENT)
    );
    // Watches ignore the transaction id.
    assert!(d.call(a, XS_WATCH, 999, b"/x\0t\0").is_ok());
}

#[test]
fn conflict_gives_eagain() {
    let (mut d, a) = daemon();
    let b = d.connect_local();
    write(&mut d, a, "/k", "0").unwrap();
    // Read-then-changed elsewhere.
    let t = start(&mut d, a);
    d.call(a, XS_READ, t, b"/k\0").unwrap();
    write(&mut d, b, "/k", "other").unwrap();
    write_tx(&mut d, a, t, "/j", "1").unwrap();
    assert_eq!(end(&mut d, a, t, true), Err(XsErr::EAGAIN));
    assert_eq!(read(&mut d, a, "/j"), Err(XsErr::ENOENT));
    // Written-then-created elsewhere.
    let t = start(&mut d, a);
    write_tx(&mut d, a, t, "/m", "mine").unwrap();
    write(&mut d, b, "/m", "theirs").unwrap();
    assert_eq!(end(&mut d, a, t, true), Err(XsErr::EAGAIN));
    assert_eq!(read(&mut d, a, "/m").unwrap(), "theirs");
    // Untouched nodes changing do not conflict.
    let t = start(&mut d, a);
    write_tx(&mut d, a, t, "/p", "1").unwrap();
    write(&mut d, b, "/k", "again").unwrap();
    end(&mut d, a, t, true).unwrap();
    // Removal inside a transaction.
    let t = start(&mut d, a);
    d.call(a, XS_RM, t, b"/p\0").unwrap();
    assert_eq!(read(&mut d, b, "/p").unwrap(), "1");
    end(&mut d, a, t, true).unwrap();
    assert_eq!(read(&mut d, b, "/p"), Err(XsErr::ENOENT));
    d.store.check().unwrap();
    // Nested start and bad end argument.
    let t = start(&mut d, a);
    assert_eq!(d.call(a, XS_TRANSACTION_START, t, b"\0"), Err(XsErr::EBUSY));
    assert_eq!(d.call(a, XS_TRANSACTION_END, t, b"X\0"), Err(XsErr::EINVAL));
}

#[test]
fn quotas() {
    let q = Quota {
        nodes_per_domain: 5,
        watches: 3,
        transactions: 2,
        transaction_nodes: 4,
        perms_per_node: 2,
        ..Quota::default()
    };
    let (mut d, dom0) = daemon_with(q);
    write(&mut d, dom0, "/local/domain/3", "").unwrap();
    set_perms(&mut d, dom0, "/local/domain/3", &["n3"]).unwrap();
    let g = domu(&mut d, 3);
    // The domain owns its home node already: 4 more.
    for i in 0..4 {
        write(&mut d, g, &format!("n{i}"), "").unwrap();
    }
    assert_eq!(write(&mut d, g, "n9", ""), Err(XsErr::ENOSPC));
    // dom0 is not limited, and its nodes do not count against the domain.
    write(&mut d, dom0, "/local/domain/3/byzero", "").unwrap();
    // Node size: 2048 bytes for a record.
    call(&mut d, g, XS_RM, &["n3"]).unwrap();
    assert_eq!(
        write(&mut d, g, "n0", &"x".repeat(2040)),
        Err(XsErr::ENOSPC)
    );
    write(&mut d, g, "n0", &"x".repeat(1000)).unwrap();
    write(&mut d, dom0, "/local/domain/3/n0", &"x".repeat(3000)).unwrap();
    // Permissions per node.
    assert_eq!(
        set_perms(&mut d, g, "n1", &["n3", "r0", "r1"]),
        Err(XsErr::ENOSPC)
    );
    set_perms(&mut d, g, "n1", &["n3", "r0"]).unwrap();
    // Watches: 4.17 refuses when more than the quota exist already.
    for i in 0..4 {
        call(&mut d, g, XS_WATCH, &["n1", &format!("t{i}")]).unwrap();
    }
    assert_eq!(call(&mut d, g, XS_WATCH, &["n1", "t9"]), Err(XsErr::E2BIG));
    assert_eq!(call(&mut d, g, XS_WATCH, &["n1", "t0"]), Err(XsErr::EEXIST));
    call(&mut d, g, XS_UNWATCH, &["n1", "t0"]).unwrap();
    assert_eq!(
        call(&mut d, g, XS_UNWATCH, &["n1", "t0"]),
        Err(XsErr::ENOENT)
    );
    // Transactions: likewise more than the quota.
    let mut ts = Vec::new();
    for _ in 0..3 {
        ts.push(start(&mut d, g));
    }
    assert_eq!(
        d.call(g, XS_TRANSACTION_START, 0, b"\0"),
        Err(XsErr::ENOSPC)
    );
    // Nodes touched in one transaction.
    let t = ts[0];
    for i in 0..4 {
        let r = d.call(g, XS_READ, t, format!("n{}\0", i).as_bytes());
        assert_ne!(r, Err(XsErr::ENOSPC), "{i}");
    }
    assert_eq!(d.call(g, XS_READ, t, b"byzero\0"), Err(XsErr::ENOSPC));
    // Reset drops watches and transactions.
    call(&mut d, g, XS_RESET_WATCHES, &[]).unwrap();
    assert_eq!(end(&mut d, g, ts[1], false), Err(XsErr::ENOENT));
    call(&mut d, g, XS_WATCH, &["n1", "t9"]).unwrap();
}

#[test]
fn special_watches_and_domains() {
    let (mut d, dom0) = daemon();
    call(&mut d, dom0, XS_WATCH, &["@introduceDomain", "i"]).unwrap();
    call(&mut d, dom0, XS_WATCH, &["@releaseDomain", "r"]).unwrap();
    let g = domu(&mut d, 9);
    call(&mut d, g, XS_WATCH, &["@releaseDomain", "mine"]).unwrap();
    d.take_events(dom0);
    d.take_events(g);
    let c = introduce(&mut d, dom0, 7);
    assert_eq!(
        d.take_events(dom0),
        vec![("@introduceDomain".into(), "i".into())]
    );
    assert_eq!(
        call(&mut d, dom0, XS_IS_DOMAIN_INTRODUCED, &["7"]).unwrap(),
        b"T\0"
    );
    assert_eq!(
        call(&mut d, dom0, XS_IS_DOMAIN_INTRODUCED, &["8"]).unwrap(),
        b"F\0"
    );
    assert_eq!(
        call(&mut d, g, XS_IS_DOMAIN_INTRODUCED, &["7"]),
        Err(XsErr::EACCES)
    );
    assert_eq!(
        call(&mut d, g, XS_INTRODUCE, &["8", "1", "1"]),
        Err(XsErr::EACCES)
    );
    assert_eq!(
        call(&mut d, dom0, XS_INTRODUCE, &["8", "1", "0"]),
        Err(XsErr::EINVAL)
    );
    // The ring says connected and the domain was notified.
    assert_eq!(d.platform.pages[&7].0[2068], XENSTORE_CONNECTED as u8);
    assert_eq!(d.platform.notified, vec![701]);
    // SET_TARGET: domain 7 gets its target's rights.
    introduce(&mut d, dom0, 8);
    d.take_events(dom0);
    write(&mut d, dom0, "/dm", "").unwrap();
    set_perms(&mut d, dom0, "/dm", &["n8"]).unwrap();
    assert!(guest_call(
        &mut d,
        7,
        &xenstored::wire::Msg::new(XS_READ, 1, 0, b"/dm\0")
    )[0]
    .result()
    .is_err());
    call(&mut d, dom0, XS_SET_TARGET, &["7", "8"]).unwrap();
    let r = guest_call(
        &mut d,
        7,
        &xenstored::wire::Msg::new(XS_READ, 2, 0, b"/dm\0"),
    );
    assert_eq!(r[0].result(), Ok(&b""[..]));
    assert_eq!(
        call(&mut d, dom0, XS_SET_TARGET, &["7", "99"]),
        Err(XsErr::ENOENT)
    );
    // Release: @releaseDomain to dom0 only (default permissions).
    call(&mut d, dom0, XS_RELEASE, &["7"]).unwrap();
    assert_eq!(
        d.take_events(dom0),
        vec![("@releaseDomain".into(), "r".into())]
    );
    assert!(d.take_events(g).is_empty());
    assert!(d.conn(c).is_none());
    assert_eq!(d.platform.unmapped, vec![7]);
    assert_eq!(call(&mut d, dom0, XS_RELEASE, &["7"]), Err(XsErr::ENOENT));
    assert_eq!(call(&mut d, dom0, XS_RELEASE, &["0"]), Err(XsErr::EINVAL));
    // The special node's permissions can open it to a domain.
    set_perms(&mut d, dom0, "@releaseDomain", &["n0", "r9"]).unwrap();
    assert_eq!(
        get_perms(&mut d, g, "@releaseDomain").unwrap(),
        ["n0", "r9"]
    );
    call(&mut d, dom0, XS_RELEASE, &["8"]).unwrap();
    assert_eq!(
        d.take_events(g),
        vec![("@releaseDomain".into(), "mine".into())]
    );
    assert_eq!(
        set_perms(&mut d, g, "@releaseDomain", &["b9"]),
        Err(XsErr::EACCES)
    );
}

#[test]
fn directory_part_and_control() {
    let (mut d, dom0) = daemon();
    for i in 0..300 {
        write(&mut d, dom0, &format!("/many/child-number-{i:04}"), "").unwrap();
    }
    let mut all = Vec::new();
    let mut off = 0usize;
    let mut gen = None;
    loop {
        let r = call(
            &mut d,
            dom0,
            XS_DIRECTORY_PART,
            &["/many", &off.to_string()],
        )
        .unwrap();
        assert!(r.len() <= 4096);
        let nul = r.iter().position(|&b| b == 0).unwrap();
        let g = std::str::from_utf8(&r[..nul]).unwrap().to_string();
        assert_eq!(*gen.get_or_insert(g.clone()), g);
        let body = &r[nul + 1..];
        let last = body.ends_with(b"\0\0") || body == b"\0";
        let names: Vec<&[u8]> = body.split(|&b| b == 0).filter(|s| !s.is_empty()).collect();
        for n in &names {
            off += n.len() + 1;
            all.push(String::from_utf8(n.to_vec()).unwrap());
        }
        if last {
            break;
        }
    }
    assert_eq!(all.len(), 300);
    let want: Vec<String> = (0..300).map(|i| format!("child-number-{i:04}")).collect();
    assert_eq!(all, want, "creation order, each once");
    // An offset past the end: the generation and an empty string.
    let r = call(&mut d, dom0, XS_DIRECTORY_PART, &["/many", "100000"]).unwrap();
    assert!(r.ends_with(b"\0\0"));
    // The whole listing is larger than a message: DIRECTORY says E2BIG.
    assert_eq!(dir(&mut d, dom0, "/many"), Err(XsErr::E2BIG));
    assert_eq!(call(&mut d, dom0, XS_CONTROL, &["check"]).unwrap(), b"OK\0");
    assert!(call(&mut d, dom0, XS_CONTROL, &["quota"])
        .unwrap()
        .starts_with(b"nodes: 1000"));
    call(&mut d, dom0, XS_CONTROL, &["quota", "set", "nodes", "7"]).unwrap();
    assert_eq!(d.quota.nodes_per_domain, 7);
    assert_eq!(
        call(&mut d, dom0, XS_CONTROL, &["nope"]),
        Err(XsErr::EINVAL)
    );
    let g = domu(&mut d, 3);
    assert_eq!(call(&mut d, g, XS_CONTROL, &["check"]), Err(XsErr::EACCES));
}

#[test]
fn watch_events_on_removal_and_lost_access() {
    let (mut d, dom0) = daemon();
    write(&mut d, dom0, "/a/b/c", "1").unwrap();
    set_perms(&mut d, dom0, "/a", &["n0", "r5"]).unwrap();
    set_perms(&mut d, dom0, "/a/b", &["n0", "r5"]).unwrap();
    set_perms(&mut d, dom0, "/a/b/c", &["n0", "r5"]).unwrap();
    let g = domu(&mut d, 5);
    let other = domu(&mut d, 6);
    call(&mut d, g, XS_WATCH, &["/a/b/c", "deep"]).unwrap();
    call(&mut d, g, XS_WATCH, &["/", "root"]).unwrap();
    call(&mut d, other, XS_WATCH, &["/a", "x"]).unwrap();
    d.take_events(g);
    d.take_events(other);
    // Losing read access still tells the watcher (its old permissions).
    set_perms(&mut d, dom0, "/a/b/c", &["n0"]).unwrap();
    let ev = d.take_events(g);
    assert!(ev.contains(&("/a/b/c".into(), "deep".into())), "{ev:?}");
    // Removing an ancestor fires the watch on the removed descendant (exact)
    // and the watches above it.
    set_perms(&mut d, dom0, "/a/b/c", &["n0", "r5"]).unwrap();
    d.take_events(g);
    call(&mut d, dom0, XS_RM, &["/a/b"]).unwrap();
    let ev = d.take_events(g);
    assert!(ev.contains(&("/a/b/c".into(), "deep".into())), "{ev:?}");
    assert!(ev.contains(&("/a/b".into(), "root".into())), "{ev:?}");
    // Domain 6 may read none of it: nothing.
    assert!(d.take_events(other).is_empty());
    // A transaction's events are dropped when it aborts.
    let t = d.call(dom0, XS_TRANSACTION_START, 0, b"\0").unwrap();
    let t: u32 = std::str::from_utf8(&t[..t.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    write_tx(&mut d, dom0, t, "/a/new", "1").unwrap();
    d.call(dom0, XS_TRANSACTION_END, t, b"F\0").unwrap();
    assert!(d.take_events(g).is_empty());
}
