//! `xen/include/public/errno.h`: Xen's own errno numbering (returned negated in RAX).
//! Every value (and the aliases) is compared with the C header by `tests/c_headers.rs`.

/// Result of a hypercall handler: the value for RAX, or the errno to negate.
pub type XenResult<T> = Result<T, Errno>;

macro_rules! xen_errnos {
    ($($name:ident = $val:expr,)*) => {
        $(pub const $name: i32 = $val;)*

        /// One `XEN_E*` value. `as_ret()` is what a guest sees in RAX.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(i32)]
        pub enum Errno { $($name = $val,)* }

        impl Errno {
            /// The positive errno for a value, if Xen defines one.
            pub const fn from_errno(v: i32) -> Option<Errno> {
                match v { $($val => Some(Errno::$name),)* _ => None }
            }
            /// Every errno Xen defines (aliases excluded), in header order.
            pub const ALL: &'static [Errno] = &[$(Errno::$name,)*];
        }
    };
}

xen_errnos! {
    EPERM = 1,
    ENOENT = 2,
    ESRCH = 3,
    EINTR = 4,
    EIO = 5,
    ENXIO = 6,
    E2BIG = 7,
    ENOEXEC = 8,
    EBADF = 9,
    ECHILD = 10,
    EAGAIN = 11,
    ENOMEM = 12,
    EACCES = 13,
    EFAULT = 14,
    EBUSY = 16,
    EEXIST = 17,
    EXDEV = 18,
    ENODEV = 19,
    ENOTDIR = 20,
    EISDIR = 21,
    EINVAL = 22,
    ENFILE = 23,
    EMFILE = 24,
    ENOSPC = 28,
    EROFS = 30,
    EMLINK = 31,
    EDOM = 33,
    ERANGE = 34,
    EDEADLK = 35,
    ENAMETOOLONG = 36,
    ENOLCK = 37,
    ENOSYS = 38,
    ENOTEMPTY = 39,
    ENODATA = 61,
    ETIME = 62,
    EBADMSG = 74,
    EOVERFLOW = 75,
    EILSEQ = 84,
    ERESTART = 85,
    ENOTSOCK = 88,
    EMSGSIZE = 90,
    EOPNOTSUPP = 95,
    EADDRINUSE = 98,
    EADDRNOTAVAIL = 99,
    ENOBUFS = 105,
    EISCONN = 106,
    ENOTCONN = 107,
    ETIMEDOUT = 110,
    ECONNREFUSED = 111,
}

/// `XEN_EWOULDBLOCK` is an alias of `XEN_EAGAIN`.
pub const EWOULDBLOCK: i32 = EAGAIN;
/// `XEN_EDEADLOCK` is an alias of `XEN_EDEADLK`.
pub const EDEADLOCK: i32 = EDEADLK;

impl Errno {
    /// The positive errno number.
    pub const fn errno(self) -> i32 {
        self as i32
    }

    /// The value a hypercall returns in RAX: `-errno`.
    pub const fn as_ret(self) -> i64 {
        -(self as i32 as i64)
    }

    /// The errno a negative hypercall return value stands for.
    pub const fn from_ret(ret: i64) -> Option<Errno> {
        if ret < 0 && ret >= -(i32::MAX as i64) {
            Errno::from_errno((-ret) as i32)
        } else {
            None
        }
    }
}

impl From<Errno> for i64 {
    /// The negative hypercall return value (`-errno`).
    fn from(e: Errno) -> i64 {
        e.as_ret()
    }
}

impl TryFrom<i64> for Errno {
    type Error = i64;

    /// The errno a negative hypercall return value stands for; the value itself
    /// back if it is not one (success values, unknown errnos).
    fn try_from(ret: i64) -> Result<Self, i64> {
        Errno::from_ret(ret).ok_or(ret)
    }
}

/// Turn a handler result into the RAX value.
pub fn to_ret(r: XenResult<i64>) -> i64 {
    match r {
        Ok(v) => v,
        Err(e) => e.as_ret(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_ret(e.as_ret()), Some(e));
        }
        assert_eq!(Errno::ENOSYS.as_ret(), -38);
        assert_eq!(Errno::from_ret(0), None);
        assert_eq!(Errno::from_ret(-15), None);
        assert_eq!(i64::from(Errno::EFAULT), -14);
        assert_eq!(Errno::try_from(-38), Ok(Errno::ENOSYS));
        assert_eq!(Errno::try_from(5), Err(5));
    }
}
