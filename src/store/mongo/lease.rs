//! A lease for work that only one instance may do at a time (the Discord bridge): one document
//! per lease in the `leases` collection naming its holder and when it expires. An instance takes a lease that is free or expired, renews it well before it
//! expires, and stops the work when it cannot renew in time; when a holder dies, its lease
//! expires and another instance takes it over within one `ttl`.
//!
//! Never two holders: taking is one conditional write on one document (free, expired, or
//! already ours), so of two instances racing only one matches, and the other's upsert collides
//! with the document's `_id` (duplicate key) and reports the lease as taken. A holder counts its
//! lease as held only until `ttl` after it *sent* the write that took or renewed it, measured on
//! its own monotonic clock, while others wait until `ttl` after the same write by the wall
//! clock: the holder always gives up first, as long as the instances' clocks agree to within
//! the slack between renewing and expiring (renew at a third of `ttl` or more often).

use super::docs::{Failure, classify, to_i64, unavailable};
use super::schema::LEASES;
use bson::{Document, doc};
use mongodb::{Collection, Database};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ticketd_events::StoreError;

/// Taken off a holder's own deadline: the expiry others see is written in whole milliseconds,
/// rounded down, so the holder must give up a little before `ttl` has passed.
const ROUNDING_MARGIN: Duration = Duration::from_millis(5);

/// One named lease as one would-be holder sees it.
#[derive(Clone, Debug)]
pub struct Lease {
    /// The `leases` collection.
    collection: Collection<Document>,
    /// The lease's name, its document's `_id`.
    name: String,
    /// Who we are: unique per instance (and per process start).
    holder: String,
    /// How long a take or renewal holds.
    ttl: Duration,
}

impl Lease {
    /// The lease `name` in `db`, held as `holder` for `ttl` per take or renewal.
    pub fn new(db: &Database, name: &str, holder: &str, ttl: Duration) -> Self {
        Lease {
            collection: db.collection(LEASES),
            name: name.to_owned(),
            holder: holder.to_owned(),
            ttl,
        }
    }

    /// Takes the lease if it is free, expired or already ours. `Some(deadline)` when we hold it:
    /// the work must stop at `deadline` unless a [`Lease::renew`] moves it. `None` when another
    /// instance holds it.
    pub async fn acquire(&self) -> Result<Option<Instant>, StoreError> {
        let sent = Instant::now();
        let now = now_ms();
        let result = self
            .collection
            .update_one(
                doc! {
                    "_id": &self.name,
                    "$or": [{"holder": &self.holder}, {"expires_at": {"$lte": now}}],
                },
                doc! {"$set": {"holder": &self.holder, "expires_at": now + self.ttl_ms()?}},
            )
            .upsert(true)
            .await;
        match result {
            Ok(_) => Ok(Some(self.deadline(sent))),
            Err(e) if matches!(classify(&e), Failure::Duplicate(_)) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Extends a lease we hold. `Some(deadline)` as for [`Lease::acquire`]; `None` when it is no
    /// longer ours (it expired and another instance took it): stop the work at once.
    pub async fn renew(&self) -> Result<Option<Instant>, StoreError> {
        let sent = Instant::now();
        let now = now_ms();
        let result = self
            .collection
            .update_one(
                doc! {"_id": &self.name, "holder": &self.holder},
                doc! {"$set": {"expires_at": now + self.ttl_ms()?}},
            )
            .await
            .map_err(unavailable)?;
        Ok((result.matched_count == 1).then(|| self.deadline(sent)))
    }

    /// Gives the lease up at once, if we hold it, so another instance need not wait for it to
    /// expire.
    pub async fn release(&self) -> Result<(), StoreError> {
        self.collection
            .delete_one(doc! {"_id": &self.name, "holder": &self.holder})
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Who holds the lease now (an unexpired holder), if anyone.
    pub async fn holder(&self) -> Result<Option<String>, StoreError> {
        let found = self
            .collection
            .find_one(doc! {"_id": &self.name, "expires_at": {"$gt": now_ms()}})
            .await
            .map_err(unavailable)?;
        Ok(found.and_then(|d| d.get_str("holder").ok().map(str::to_owned)))
    }

    /// This lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How long a take or renewal holds.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Until when a take or renewal sent at `sent` lets us work.
    fn deadline(&self, sent: Instant) -> Instant {
        sent + self.ttl.saturating_sub(ROUNDING_MARGIN)
    }

    fn ttl_ms(&self) -> Result<i64, StoreError> {
        to_i64(u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX))
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
