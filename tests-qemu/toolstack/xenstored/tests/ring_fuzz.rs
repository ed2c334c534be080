//! The ring protocol through a domain's page: round trips, malformed input
//! closing only that connection, the outstanding-request quota, and fuzzed
//! messages from a hostile domain.

mod common;
use common::*;
use xen_public_abi::io::xs_wire::*;
use xenstored::ring::{self, RingMem};
use xenstored::wire::{cstr, cstrs, Msg};
use xenstored::{Platform, XsErr};

fn setup() -> (D, u32) {
    let (mut d, dom0) = daemon();
    for n in [1u16, 2] {
        let home = format!("/local/domain/{n}");
        write(&mut d, dom0, &home, "").unwrap();
        set_perms(&mut d, dom0, &home, &[&format!("n{n}")]).unwrap();
        introduce(&mut d, dom0, n);
    }
    write(&mut d, dom0, "/secret", "s").unwrap();
    (d, dom0)
}

fn ok_reply(r: &[Msg], req_id: u32) -> Vec<u8> {
    let m = r
        .iter()
        .find(|m| m.req_id == req_id && m.ty != XS_WATCH_EVENT)
        .expect("a reply");
    m.result().expect("success").to_vec()
}

#[test]
fn round_trip_through_the_ring() {
    let (mut d, _) = setup();
    let mut p = cstr("name");
    p.extend_from_slice(b"guest");
    let r = guest_call(&mut d, 1, &Msg::new(XS_WRITE, 7, 0, &p));
    assert_eq!(r, vec![Msg::new(XS_WRITE, 7, 0, b"OK\0")]);
    let r = guest_call(&mut d, 1, &Msg::new(XS_READ, 8, 0, b"name\0"));
    assert_eq!(ok_reply(&r, 8), b"guest");
    let r = guest_call(&mut d, 1, &Msg::new(XS_READ, 9, 0, b"/secret\0"));
    assert_eq!(r[0].result(), Err(XsErr::EACCES));
    assert_eq!(r[0].payload, b"EACCES\0");
    // A watch: ack, then its first event, then an event per change.
    let r = guest_call(
        &mut d,
        1,
        &Msg::new(XS_WATCH, 10, 0, &cstrs(&["name", "tk"])),
    );
    assert_eq!(r[0].ty, XS_WATCH);
    assert_eq!(
        r[1],
        Msg::new(XS_WATCH_EVENT, 0, 0, &cstrs(&["name", "tk"]))
    );
    let dom0 = d.connect_local();
    write(&mut d, dom0, "/local/domain/1/name", "x").unwrap();
    d.poll(64);
    assert_eq!(
        guest_recv(&mut d, 1),
        vec![Msg::new(XS_WATCH_EVENT, 0, 0, &cstrs(&["name", "tk"]))]
    );
    // Messages larger than the ring are carried across several polls.
    let big = "v".repeat(1800);
    let mut p = cstr("big");
    p.extend_from_slice(big.as_bytes());
    let bytes = Msg::new(XS_WRITE, 11, 0, &p).encode();
    let mut sent = 0;
    let mut replies = Vec::new();
    while sent < bytes.len() {
        sent += guest_send(&mut d, 1, &bytes[sent..]);
        d.poll(64);
        replies.extend(guest_recv(&mut d, 1));
    }
    assert_eq!(ok_reply(&replies, 11), b"OK\0");
    let r = guest_call(&mut d, 1, &Msg::new(XS_READ, 12, 0, b"big\0"));
    let mut got = r.clone();
    while got.iter().all(|m| m.req_id != 12) {
        d.poll(64);
        got.extend(guest_recv(&mut d, 1));
    }
    assert_eq!(ok_reply(&got, 12), big.as_bytes());
}

fn assert_still_serves(d: &mut D, n: u16) {
    let r = guest_call(d, n, &Msg::new(XS_READ, 99, 0, b"/local/domain/2\0"));
    assert!(r.iter().any(|m| m.req_id == 99), "d{n} is still served");
}

#[test]
fn malformed_input_closes_only_that_connection() {
    type Breaker = fn(&mut D);
    let cases: [(&str, u32, Breaker); 5] = [
        ("too long", XENSTORE_ERROR_PROTO, |d| {
            let mut m = Msg::new(XS_READ, 1, 0, b"x\0").encode();
            m[12..16].copy_from_slice(&4097u32.to_le_bytes());
            guest_send(d, 1, &m);
        }),
        ("bad type", XENSTORE_ERROR_PROTO, |d| {
            guest_send(d, 1, &Msg::new(XS_TYPE_COUNT + 3, 1, 0, b"x\0").encode());
        }),
        ("event type", XENSTORE_ERROR_PROTO, |d| {
            guest_send(d, 1, &Msg::new(XS_WATCH_EVENT, 1, 0, b"x\0t\0").encode());
        }),
        ("unterminated", XENSTORE_ERROR_PROTO, |d| {
            guest_send(d, 1, &Msg::new(XS_READ, 1, 0, b"name").encode());
        }),
        ("indices", XENSTORE_ERROR_RINGIDX, |d| {
            let m = d.platform.ring(1).unwrap();
            m.store(ring::REQ_PROD, 5000);
        }),
    ];
    for (what, code, brk) in cases {
        let (mut d, _) = setup();
        let c1 = d.domain_conn(1).unwrap();
        brk(&mut d);
        d.poll(64);
        assert!(d.is_closed(c1), "{what}: closed");
        assert_eq!(
            d.platform.pages[&1].load(ring::ERROR),
            code,
            "{what}: error field"
        );
        assert!(
            d.platform.logs.iter().any(|l| l.contains("d1:")),
            "{what}: logged"
        );
        // Nothing more is read from it, and the other domain is served.
        guest_send(&mut d, 1, &Msg::new(XS_READ, 3, 0, b"name\0").encode());
        d.poll(64);
        assert_eq!(
            d.platform.pages[&1].load(ring::RSP_PROD),
            0,
            "{what}: no replies"
        );
        assert_still_serves(&mut d, 2);
        let dom0 = d.connect_local();
        assert_eq!(read(&mut d, dom0, "/secret").unwrap(), "s");
    }
    // Response ring indices too.
    let (mut d, _) = setup();
    d.platform.ring(1).unwrap().store(ring::RSP_CONS, 3000);
    guest_send(&mut d, 1, &Msg::new(XS_READ, 3, 0, b"name\0").encode());
    d.poll(64);
    assert!(d.is_closed(d.domain_conn(1).unwrap()));
    assert_still_serves(&mut d, 2);
}

#[test]
fn outstanding_requests_wait_for_the_reader() {
    let (mut d, _) = setup();
    // 80 small requests; the guest never reads replies.
    let one = Msg::new(XS_GET_DOMAIN_PATH, 1, 0, b"1\0").encode();
    let mut bytes = Vec::new();
    for _ in 0..80 {
        bytes.extend_from_slice(&one);
    }
    let mut sent = guest_send(&mut d, 1, &bytes);
    for _ in 0..10 {
        d.poll(64);
        sent += guest_send(&mut d, 1, &bytes[sent..]);
    }
    // Replies fill the response ring, then at most `outstanding` wait queued:
    // the rest stays unread in the request ring.
    let c = d.domain_conn(1).unwrap();
    let cons = d.platform.pages[&1].load(ring::REQ_CONS) as usize;
    assert!(
        cons < bytes.len(),
        "stopped reading ({cons} of {})",
        bytes.len()
    );
    assert!(d.conn(c).unwrap().caller.domid == 1);
    // Once the guest reads, it is served to the end.
    let mut n = 0;
    for _ in 0..100 {
        sent += guest_send(&mut d, 1, &bytes[sent..]);
        d.poll(64);
        n += guest_recv(&mut d, 1).len();
    }
    assert_eq!(n, 80);
}

/// xorshift64*: deterministic fuzz input.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "",
    "/",
    "name",
    "/secret",
    "/local/domain/2",
    "/local/domain/2/x",
    "device/vif/0",
    "@releaseDomain",
    "@introduceDomain",
    "T",
    "F",
    "0",
    "1",
    "2",
    "b1",
    "n2",
    "r0",
    "w1",
    "../x",
    "/a//b",
    "a/",
    "4096",
    "check",
    "quota",
];

#[test]
fn fuzzed_messages_from_a_hostile_domain() {
    for seed in 1..=20u64 {
        let (mut d, dom0) = setup();
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let before2 = get_perms(&mut d, dom0, "/local/domain/2").unwrap();
        let (mut handled, mut closes) = (0, 0);
        for _ in 0..300 {
            let ty = rng.below(26) as u32;
            let mut payload = Vec::new();
            match rng.below(3) {
                0 => {
                    for _ in 0..rng.below(4) {
                        payload.extend_from_slice(
                            WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes(),
                        );
                        payload.push(0);
                    }
                }
                1 => {
                    for _ in 0..rng.below(64) {
                        payload.push(rng.next() as u8);
                    }
                }
                _ => {
                    let w = WORDS[rng.below(WORDS.len() as u64) as usize];
                    payload.extend_from_slice(format!("{w}/k{}", rng.below(50)).as_bytes());
                    payload.push(0);
                    payload.extend_from_slice(b"value");
                }
            }
            let tx = if rng.below(4) == 0 {
                rng.below(4) as u32
            } else {
                0
            };
            let m = Msg::new(ty, rng.next() as u32, tx, &payload);
            let mut bytes = m.encode();
            if rng.below(50) == 0 {
                let i = rng.below(bytes.len() as u64) as usize;
                bytes[i] ^= 1 << rng.below(8);
            }
            guest_send(&mut d, 1, &bytes);
            handled += d.poll(64);
            guest_recv(&mut d, 1);
            // A closed connection: dom0 releases and introduces it again
            // (a fresh page), so the fuzzing goes on.
            if d.is_closed(d.domain_conn(1).unwrap()) {
                closes += 1;
                call(&mut d, dom0, XS_RELEASE, &["1"]).unwrap();
                d.platform.pages.remove(&1);
                d.platform.partial.remove(&1);
                introduce(&mut d, dom0, 1);
            }
            if rng.below(100) == 0 {
                let m = d.platform.ring(1).unwrap();
                m.store(ring::REQ_PROD, rng.next() as u32);
            }
            d.store
                .check()
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        }
        assert!(
            handled > 150 && closes > 5,
            "seed {seed}: {handled} handled, {closes} closes"
        );
        // Nobody else was harmed.
        assert_still_serves(&mut d, 2);
        assert_eq!(read(&mut d, dom0, "/secret").unwrap(), "s", "seed {seed}");
        assert_eq!(get_perms(&mut d, dom0, "/local/domain/2").unwrap(), before2);
        assert!(
            dir(&mut d, dom0, "/local/domain/2").unwrap().is_empty(),
            "seed {seed}"
        );
        for p in d.store.paths().map(String::from).collect::<Vec<_>>() {
            if p.starts_with("/local/domain/1/") {
                // Only privileged connections change owners.
                let owner = get_perms(&mut d, dom0, &p).unwrap()[0][1..].to_string();
                assert_eq!(owner, "1", "seed {seed}: {p}");
            }
        }
    }
}
