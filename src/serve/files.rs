//! The open-file limit. Every client connection costs a descriptor, and so do the store's files,
//! outgoing connections (MongoDB, Discord, webhooks) and logs; when accept() takes the last
//! one, the store fails too. So the server raises its soft limit to the hard one at start-up
//! (the soft default, often 1,024, is far below what one box can serve), and hands clients
//! the limit less a reserve (ADR 0015).

use tracing::{info, warn};

/// Raises the soft open-file limit to the hard one and says what it is; for the server
/// binary, once at start-up.
#[cfg(unix)]
pub fn raise_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => info!(open_files = limit, "open-file limit"),
        Err(e) => warn!("cannot raise the open-file limit: {e}"),
    }
}

/// Elsewhere there is no such limit to raise.
#[cfg(not(unix))]
pub fn raise_limit() {}

/// The soft open-file limit in force, `None` where there is none or it cannot be read.
#[cfg(unix)]
pub fn limit() -> Option<u64> {
    match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, _hard)) if soft != rlimit::INFINITY => Some(soft),
        Ok(_) => None,
        Err(e) => {
            warn!("cannot read the open-file limit: {e}");
            None
        }
    }
}

/// Elsewhere there is no such limit.
#[cfg(not(unix))]
pub fn limit() -> Option<u64> {
    None
}

/// How many connections clients may hold: the open-file limit less `reserve`. A reserve that
/// leaves clients nothing is a configuration mistake the server survives: it keeps half.
pub fn client_slots(reserve: usize) -> usize {
    let Some(limit) = limit() else {
        return usize::MAX;
    };
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    if reserve >= limit {
        let slots = (limit / 2).max(1);
        warn!(
            open_files = limit,
            reserve,
            "RESERVED_FILE_DESCRIPTORS is not below the open-file limit: clients get {slots} connections"
        );
        return slots;
    }
    limit - reserve
}
