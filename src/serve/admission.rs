//! Who may hold a connection: at most a few per client address and, in all, no more than the
//! open files the process can spare, so that one client cannot take every descriptor and lock
//! the others out (ADR 0015). A connection's [`Slot`] lives as long as its socket does — a
//! WebSocket's too, long after its HTTP request — and gives its place back when dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Counts the open connections, per client address and in all.
#[derive(Debug, Clone)]
pub struct Admission {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The most one address may hold; `None` is no cap.
    per_address: Option<usize>,
    /// The most all clients together may hold.
    slots: usize,
    /// One lock for both counts, so a refusal never sees them disagree; it is held for a map
    /// update, once per connection opened or closed.
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already holds its share.
    Address,
    /// Every slot is taken.
    Full,
}

impl Admission {
    /// `slots` connections in all. A single address never gets more than half of them, whatever
    /// `per_address` says: with a low open-file limit, one client would otherwise still take
    /// every slot.
    pub fn new(per_address: Option<usize>, slots: usize) -> Self {
        let half = (slots / 2).max(1);
        Admission {
            inner: Arc::new(Inner {
                per_address: per_address.map(|cap| cap.min(half)),
                slots,
                open: Mutex::new(Open::default()),
            }),
        }
    }

    /// The cap per address in force, `None` when there is none.
    pub fn per_address(&self) -> Option<usize> {
        self.inner.per_address
    }

    /// The connections all clients together may hold.
    pub fn slots(&self) -> usize {
        self.inner.slots
    }

    /// Takes a slot for a connection from `ip`.
    pub fn admit(&self, ip: IpAddr) -> Result<Slot, Refusal> {
        // An IPv4 client of a dual-stack listener arrives as ::ffff:a.b.c.d; it is one client.
        let ip = ip.to_canonical();
        let mut open = self.inner.lock();
        if open.total >= self.inner.slots {
            return Err(Refusal::Full);
        }
        let held = open.by_address.get(&ip).copied().unwrap_or(0);
        if self.inner.per_address.is_some_and(|cap| held >= cap) {
            return Err(Refusal::Address);
        }
        open.total += 1;
        open.by_address.insert(ip, held + 1);
        Ok(Slot {
            inner: self.inner.clone(),
            ip,
        })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Open> {
        // The counts stay consistent even if a holder panicked: each update is one statement.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    inner: Arc<Inner>,
    ip: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.inner.lock();
        open.total = open.total.saturating_sub(1);
        if let Some(held) = open.by_address.get_mut(&self.ip) {
            *held -= 1;
            if *held == 0 {
                open.by_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn caps_each_address_and_the_total_and_frees_on_drop() {
        let admission = Admission::new(Some(2), 5);
        let a1 = admission.admit(ip("10.0.0.1")).unwrap();
        let _a2 = admission.admit(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(
            admission.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::Address
        );
        let _b = [
            admission.admit(ip("10.0.0.2")).unwrap(),
            admission.admit(ip("10.0.0.2")).unwrap(),
            admission.admit(ip("10.0.0.3")).unwrap(),
        ];
        assert_eq!(admission.admit(ip("10.0.0.4")).unwrap_err(), Refusal::Full);
        drop(a1);
        assert!(admission.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn one_address_never_gets_more_than_half_the_slots() {
        assert_eq!(Admission::new(Some(512), 100).per_address(), Some(50));
        assert_eq!(Admission::new(Some(8), 100).per_address(), Some(8));
        assert_eq!(Admission::new(None, 100).per_address(), None);
        assert_eq!(Admission::new(Some(512), 1).per_address(), Some(1));
    }
}
