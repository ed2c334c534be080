//! `XS_CONTROL` (`xenstored_control.c`): `check`, `log on|off`, `print`,
//! `quota` (show, `set NAME VALUE`, a domain's usage), `help`. Privileged only
//! (checked before dispatch).

use alloc::string::String;
use alloc::vec::Vec;

use crate::daemon::{Platform, Xenstored};
use crate::node_ops::{args, OK, R};
use crate::wire::{self, XsErr};

impl<P: Platform> Xenstored<P> {
    pub(crate) fn do_control(&mut self, p: &[u8]) -> R<Vec<u8>> {
        let a = args(p)?;
        let (cmd, rest) = a.split_first().ok_or(XsErr::EINVAL)?;
        match (*cmd, rest) {
            ("check", []) => {
                if let Err(why) = self.store.check() {
                    let line = alloc::format!("xenstored: check: {why}");
                    self.platform.log(&line);
                }
                Ok(OK.to_vec())
            }
            ("log", ["on"]) => {
                self.logging = true;
                Ok(OK.to_vec())
            }
            ("log", ["off"]) => {
                self.logging = false;
                Ok(OK.to_vec())
            }
            ("print", [s]) => {
                let line = alloc::format!("xenstored: {s}");
                self.platform.log(&line);
                Ok(OK.to_vec())
            }
            ("quota", []) => Ok(wire::cstr(&self.quota_text())),
            ("quota", ["set", name, val]) => {
                let n = wire::number(val).ok_or(XsErr::EINVAL)?;
                let q = &mut self.quota;
                match *name {
                    "nodes" => q.nodes_per_domain = n,
                    "node-size" => q.node_size = n as usize,
                    "watches" => q.watches = n,
                    "transactions" => q.transactions = n,
                    "transaction-nodes" => q.transaction_nodes = n,
                    "permissions" => q.perms_per_node = n as usize,
                    "outstanding" => q.outstanding = n,
                    _ => return Err(XsErr::EINVAL.into()),
                }
                Ok(OK.to_vec())
            }
            ("quota", [d]) => {
                let d = u16::try_from(wire::number(d).ok_or(XsErr::EINVAL)?)
                    .map_err(|_| XsErr::EINVAL)?;
                let cid = self.by_domid.get(&d).ok_or(XsErr::ENOENT)?;
                let c = &self.conns[cid];
                let s = alloc::format!(
                    "nodes: {}\nwatches: {}\ntransactions: {}\noutstanding: {}\n",
                    self.store.owned_by(d),
                    c.watches.len(),
                    c.txs.len(),
                    c.out.len()
                );
                Ok(wire::cstr(&s))
            }
            ("help", []) => Ok(wire::cstr(
                "check\t\nlog\ton|off\nprint\t<string>\nquota\t[set <name> <val>|<domid>]\nhelp\t\n",
            )),
            _ => Err(XsErr::EINVAL.into()),
        }
    }

    fn quota_text(&self) -> String {
        let q = &self.quota;
        alloc::format!(
            "nodes: {}\nnode-size: {}\nwatches: {}\ntransactions: {}\ntransaction-nodes: {}\npermissions: {}\noutstanding: {}\n",
            q.nodes_per_domain,
            q.node_size,
            q.watches,
            q.transactions,
            q.transaction_nodes,
            q.perms_per_node,
            q.outstanding
        )
    }
}
