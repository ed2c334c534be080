//! Watches (`xenstored_watch.c`): a connection asks to hear about changes at
//! or below a path, with a token it chooses; each change sends it
//! `XS_WATCH_EVENT` (path, token) if it may read the node or its parent. A
//! watch given a relative path hears relative paths. `@introduceDomain` and
//! `@releaseDomain` are special events, fired when a domain is introduced or
//! released, heard by whoever may read their (settable) permissions: dom0 only
//! by default.

use alloc::string::String;

use crate::perms::Perms;

/// `@introduceDomain`.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// `@releaseDomain`.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// One registered watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Watch {
    /// Absolute path, or a `@` name.
    pub path: String,
    pub token: String,
    /// The domain path stripped from event paths (relative watches).
    pub relative_to: Option<String>,
}

impl Watch {
    /// Does a change of `name` fire this watch? `exact`: only a watch on that
    /// very path (a removed child); else any watch at or above it (`is_child`;
    /// a watch on `/` hears everything, as in Xen).
    pub fn matches(&self, name: &str, exact: bool) -> bool {
        if exact {
            return self.path == name;
        }
        if self.path == "/" {
            return true;
        }
        name.strip_prefix(self.path.as_str())
            .is_some_and(|r| r.is_empty() || r.starts_with('/'))
    }

    /// The path as the watcher sees it.
    pub fn event_path<'a>(&self, name: &'a str) -> &'a str {
        match &self.relative_to {
            Some(prefix) => match name.strip_prefix(prefix.as_str()) {
                Some(r) => r.strip_prefix('/').unwrap_or(r),
                None => name,
            },
            None => name,
        }
    }
}

/// A change to announce.
#[derive(Clone, Debug)]
pub struct Fire {
    pub name: String,
    pub exact: bool,
    /// The node's permissions at the change (after a write, before a removal).
    pub perms: Option<Perms>,
    /// Its previous permissions (a `SET_PERMS`): a watcher that could read it
    /// before hears that it lost access.
    pub old_perms: Option<Perms>,
}

impl Fire {
    pub fn new(name: &str, exact: bool, perms: Option<Perms>) -> Fire {
        Fire {
            name: String::from(name),
            exact,
            perms,
            old_perms: None,
        }
    }
}

/// Is `name` one of the special event names?
pub fn is_special(name: &str) -> bool {
    name == INTRODUCE_DOMAIN || name == RELEASE_DOMAIN
}
