//! placeholder
use super::HvmEnv;
use crate::common::guest_access::GuestAccess;
use xen_public_abi::XenResult;
pub fn do_altp2m_op(_env: &mut dyn HvmEnv, _g: &mut dyn GuestAccess, _arg: u64) -> XenResult<i64> {
    Err(xen_public_abi::Errno::ENOSYS)
}
