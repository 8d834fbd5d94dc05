//! The names of the people ticketd has seen act, so that a ticket handed to someone by id shows
//! their name: the `username` of their last token, or their Discord display name (under
//! `discord:<snowflake>`). Kept as links beside the events, written only when a name is new or
//! changed; the events themselves carry the name as it was decided, so replays never need this.

use crate::store::Links;
use std::collections::HashMap;
use std::sync::Mutex;
use ticketd_events::StoreError;

/// The links kind of a person's last known name.
pub const NAMES: &str = "person-name";
/// Names remembered in memory; past this the cache starts over (the links keep them all).
const CACHED: usize = 50_000;

/// The cache in front of the [`NAMES`] links.
#[derive(Debug, Default)]
pub struct People {
    known: Mutex<HashMap<String, String>>,
}

impl People {
    /// Records that `id` acted as `name`; a write only when the name is new to this instance.
    pub async fn remember<S: Links>(
        &self,
        store: &S,
        id: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        if self.cached(id).as_deref() == Some(name) {
            return Ok(());
        }
        if store.load_link(NAMES, id).await?.as_deref() != Some(name) {
            store.save_link(NAMES, id, Some(name)).await?;
        }
        self.cache(id, name);
        Ok(())
    }

    /// The last name `id` acted under, or the id itself for someone never seen.
    pub async fn name_of<S: Links>(&self, store: &S, id: &str) -> Result<String, StoreError> {
        if let Some(name) = self.cached(id) {
            return Ok(name);
        }
        match store.load_link(NAMES, id).await? {
            Some(name) => {
                self.cache(id, &name);
                Ok(name)
            }
            None => Ok(id.to_string()),
        }
    }

    fn cached(&self, id: &str) -> Option<String> {
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    fn cache(&self, id: &str, name: &str) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= CACHED {
            known.clear();
        }
        known.insert(id.to_string(), name.to_string());
    }
}
