//! Transactions (`xenstored_transaction.c`): a connection's changes are kept
//! apart until `XS_TRANSACTION_END` "T"; every node the transaction reads or
//! writes is remembered with the generation it had, and the commit fails with
//! `EAGAIN` if any of them changed (or appeared, or went) in the meantime.
//! Watch events of the transaction fire only when it commits.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::store::{Node, Store};
use crate::watch::Fire;

/// One open transaction.
#[derive(Debug, Default)]
pub struct Tx {
    /// Written nodes (`None`: removed).
    overlay: BTreeMap<String, Option<Node>>,
    /// Generation of each touched node in the store when first touched
    /// (`None`: it did not exist).
    seen: BTreeMap<String, Option<u64>>,
    /// Watch events to fire on commit.
    pub events: Vec<Fire>,
    /// Node-count change per owner, for the node quota.
    delta: BTreeMap<u16, i64>,
}

impl Tx {
    /// Nodes touched so far (the `quota_trans_nodes` count).
    pub fn touched(&self) -> usize {
        self.seen.len()
    }

    /// True when no node it touched changed in `store` since.
    pub fn consistent(&self, store: &Store) -> bool {
        self.seen
            .iter()
            .all(|(p, g)| store.get(p).map(|n| n.generation) == *g)
    }

    /// Apply the changes to `store` (after [`Tx::consistent`]).
    pub fn commit(self, store: &mut Store) -> Vec<Fire> {
        for (p, n) in self.overlay {
            match n {
                Some(n) => store.put(&p, n),
                None => store.remove(&p),
            }
        }
        self.events
    }
}

/// The store as one request sees it: the store itself, or through a
/// transaction.
pub struct View<'a> {
    pub store: &'a mut Store,
    pub tx: Option<&'a mut Tx>,
}

impl View<'_> {
    fn note(&mut self, path: &str) {
        if let Some(tx) = self.tx.as_deref_mut() {
            if !tx.seen.contains_key(path) {
                let g = self.store.get(path).map(|n| n.generation);
                tx.seen.insert(String::from(path), g);
            }
        }
    }

    /// Would touching `path` be a node the transaction has not touched yet?
    pub fn is_new_touch(&self, path: &str) -> bool {
        self.tx
            .as_deref()
            .is_some_and(|tx| !tx.seen.contains_key(path))
    }

    /// Nodes touched by the transaction (0 outside one).
    pub fn touched(&self) -> usize {
        self.tx.as_deref().map_or(0, Tx::touched)
    }

    pub fn in_tx(&self) -> bool {
        self.tx.is_some()
    }

    /// Read without recording (permission walks of parents).
    pub fn peek(&self, path: &str) -> Option<Node> {
        if let Some(tx) = self.tx.as_deref() {
            if let Some(n) = tx.overlay.get(path) {
                return n.clone();
            }
        }
        self.store.get(path).cloned()
    }

    /// Read a node (recorded by a transaction).
    pub fn read(&mut self, path: &str) -> Option<Node> {
        self.note(path);
        self.peek(path)
    }

    /// Write a node.
    pub fn write(&mut self, path: &str, node: Node) {
        match self.tx.as_deref_mut() {
            None => self.store.put(path, node),
            Some(_) => {
                let old = self.peek(path).map(|n| n.perms.owner());
                self.note(path);
                let tx = self.tx.as_deref_mut().expect("in a transaction");
                if let Some(o) = old {
                    *tx.delta.entry(o).or_insert(0) -= 1;
                }
                *tx.delta.entry(node.perms.owner()).or_insert(0) += 1;
                tx.overlay.insert(String::from(path), Some(node));
            }
        }
    }

    /// Remove one node.
    pub fn remove(&mut self, path: &str) {
        match self.tx.as_deref_mut() {
            None => self.store.remove(path),
            Some(_) => {
                let old = self.peek(path).map(|n| n.perms.owner());
                self.note(path);
                let tx = self.tx.as_deref_mut().expect("in a transaction");
                if let Some(o) = old {
                    *tx.delta.entry(o).or_insert(0) -= 1;
                }
                tx.overlay.insert(String::from(path), None);
            }
        }
    }

    /// Nodes `domid` owns as this view sees them.
    pub fn owned_by(&self, domid: u16) -> i64 {
        let d = self
            .tx
            .as_deref()
            .and_then(|t| t.delta.get(&domid).copied())
            .unwrap_or(0);
        i64::from(self.store.owned_by(domid)) + d
    }

    /// Queue a watch event (fired at commit) or return it to fire now.
    pub fn event(&mut self, f: Fire) -> Option<Fire> {
        match self.tx.as_deref_mut() {
            Some(tx) => {
                tx.events.push(f);
                None
            }
            None => Some(f),
        }
    }
}
