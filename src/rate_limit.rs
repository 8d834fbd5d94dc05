//! Rate limits per user per route, at the API specification's quotas (GCRA through governor: a
//! burst of the quota, then one request per 60 s / quota). Requests without a valid token are
//! limited per client address so that guessing tokens is slow too. A refusal is a [`Limited`],
//! which each transport answers its own way: HTTP with a 429 envelope and `Retry-After`, the
//! socket with an `error` event.
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use std::net::IpAddr;
use std::num::NonZeroU32;

/// The routes with their own quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// POST /tickets: 3 per minute (API specification).
    CreateTicket,
    /// GET /tickets: 30 per minute (API specification).
    ListTickets,
    /// GET /tickets/{id}: 30 per minute (API specification).
    GetTicket,
    /// POST /tickets/{id}/messages: 15 per minute (API specification).
    PostMessage,
    /// GET /tickets/{id}/messages: 15 per minute (API specification).
    ListMessages,
    /// PATCH a message: 15 per minute, like posting one.
    EditMessage,
    /// DELETE a message: 15 per minute, like posting one.
    DeleteMessage,
    /// PATCH /tickets/{id}: 10 per minute; staff routing is rare.
    UpdateTicket,
    /// POST close: 10 per minute.
    CloseTicket,
    /// POST reopen: 10 per minute.
    ReopenTicket,
    /// GET /tickets/{id}/events (admins): 30 per minute, like reading the ticket.
    TicketEvents,
    /// POST claim and unclaim: 30 per minute, since an agent works through a queue.
    Claim,
    /// GET /events (admins): 120 per minute, so a mirror catching up pages at 2,000 events a
    /// second and a long poll may be renewed every half second.
    Events,
    /// Saved replies and blocks, reads and writes together: 30 per minute (ADR 0021).
    Helpdesk,
    /// GET /search: 60 per minute, so a search box may follow typing (ADR 0024).
    Search,
    /// GET /reports (admins): 30 per minute; a report reads many rows (ADR 0026).
    Reports,
    /// POST feedback: 10 per minute, like a close.
    Feedback,
}

impl Route {
    const ALL: [Route; 17] = [
        Route::CreateTicket,
        Route::ListTickets,
        Route::GetTicket,
        Route::PostMessage,
        Route::ListMessages,
        Route::EditMessage,
        Route::DeleteMessage,
        Route::UpdateTicket,
        Route::CloseTicket,
        Route::ReopenTicket,
        Route::TicketEvents,
        Route::Events,
        Route::Claim,
        Route::Helpdesk,
        Route::Search,
        Route::Reports,
        Route::Feedback,
    ];

    /// Its name in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Route::CreateTicket => "create_ticket",
            Route::ListTickets => "list_tickets",
            Route::GetTicket => "get_ticket",
            Route::PostMessage => "post_message",
            Route::ListMessages => "list_messages",
            Route::EditMessage => "edit_message",
            Route::DeleteMessage => "delete_message",
            Route::UpdateTicket => "update_ticket",
            Route::CloseTicket => "close_ticket",
            Route::ReopenTicket => "reopen_ticket",
            Route::TicketEvents => "ticket_events",
            Route::Claim => "claim",
            Route::Events => "events",
            Route::Helpdesk => "helpdesk",
            Route::Search => "search",
            Route::Reports => "reports",
            Route::Feedback => "feedback",
        }
    }

    /// Requests per minute.
    pub fn per_minute(self) -> u32 {
        match self {
            Route::CreateTicket => 3,
            Route::ListTickets
            | Route::GetTicket
            | Route::TicketEvents
            | Route::Claim
            | Route::Helpdesk
            | Route::Reports => 30,
            Route::PostMessage
            | Route::ListMessages
            | Route::EditMessage
            | Route::DeleteMessage => 15,
            Route::UpdateTicket | Route::CloseTicket | Route::ReopenTicket | Route::Feedback => 10,
            Route::Events => 120,
            Route::Search => 60,
        }
    }
}

/// Requests per minute from one address without a valid token.
pub const ANONYMOUS_PER_MINUTE: u32 = 60;

/// Socket authorization attempts per minute from one address; generous, since many users may
/// share an address behind a proxy, but enough to make guessing tokens slow.
pub const SOCKET_AUTHORIZE_PER_MINUTE: u32 = 120;

/// Every limiter.
pub struct RateLimits {
    enabled: bool,
    users: Vec<DefaultKeyedRateLimiter<String>>,
    anonymous: DefaultKeyedRateLimiter<IpAddr>,
    socket_authorize: DefaultKeyedRateLimiter<IpAddr>,
    /// Refusals by quota, for `/metrics`; touched only when a request is refused.
    refusals: Family<Refused, Counter>,
}

/// The label of a refusal: the quota's name ([`Route::name`], `anonymous`, `socket_authorize`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct Refused {
    /// Which quota refused.
    pub route: &'static str,
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

impl RateLimits {
    /// Limiters at the documented quotas; `enabled = false` lets everything through.
    pub fn new(enabled: bool) -> Self {
        RateLimits {
            enabled,
            users: Route::ALL
                .iter()
                .map(|r| DefaultKeyedRateLimiter::keyed(quota(r.per_minute())))
                .collect(),
            anonymous: DefaultKeyedRateLimiter::keyed(quota(ANONYMOUS_PER_MINUTE)),
            socket_authorize: DefaultKeyedRateLimiter::keyed(quota(SOCKET_AUTHORIZE_PER_MINUTE)),
            refusals: Family::default(),
        }
    }

    /// Refusals counted by quota; a clone shares the counts.
    pub fn refusals(&self) -> &Family<Refused, Counter> {
        &self.refusals
    }

    fn refused(&self, route: &'static str) {
        self.refusals.get_or_create(&Refused { route }).inc();
    }

    /// Counts one request of `user_id` on `route`; refused when over the quota.
    pub fn check_user(&self, route: Route, user_id: &str) -> Result<(), Limited> {
        if !self.enabled {
            return Ok(());
        }
        let index = Route::ALL.iter().position(|r| *r == route).unwrap_or(0);
        let Some(limiter) = self.users.get(index) else {
            return Ok(());
        };
        limiter
            .check_key(&user_id.to_string())
            .map_err(|not_until| {
                self.refused(route.name());
                limited(
                    route.per_minute(),
                    not_until.wait_time_from(DefaultClock::default().now()),
                )
            })
    }

    /// Counts one request without a valid token from `addr`; refused when over the quota.
    pub fn check_anonymous(&self, addr: IpAddr) -> Result<(), Limited> {
        if !self.enabled {
            return Ok(());
        }
        self.anonymous.check_key(&addr).map_err(|not_until| {
            self.refused("anonymous");
            limited(
                ANONYMOUS_PER_MINUTE,
                not_until.wait_time_from(DefaultClock::default().now()),
            )
        })
    }

    /// Counts one socket authorization attempt from `addr`; refused when over the quota.
    pub fn check_socket_authorize(&self, addr: IpAddr) -> Result<(), Limited> {
        if !self.enabled {
            return Ok(());
        }
        self.socket_authorize.check_key(&addr).map_err(|not_until| {
            self.refused("socket_authorize");
            limited(
                SOCKET_AUTHORIZE_PER_MINUTE,
                not_until.wait_time_from(DefaultClock::default().now()),
            )
        })
    }

    /// Drops the state of keys that are back to a full quota, so memory follows active users.
    pub fn forget_idle(&self) {
        for limiter in &self.users {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        for limiter in [&self.anonymous, &self.socket_authorize] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// A request over its quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The quota that was exceeded, per minute.
    pub per_minute: u32,
    /// Whole seconds until the next request would pass (at least 1).
    pub retry_after_secs: u64,
}

fn limited(per_minute: u32, wait: std::time::Duration) -> Limited {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Limited {
        per_minute,
        retry_after_secs: secs.max(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_is_per_user_and_says_when_to_retry() {
        let limits = RateLimits::new(true);
        for _ in 0..3 {
            assert!(limits.check_user(Route::CreateTicket, "ann").is_ok());
        }
        match limits.check_user(Route::CreateTicket, "ann") {
            Err(Limited {
                per_minute: 3,
                retry_after_secs,
            }) => {
                assert!((1..=20).contains(&retry_after_secs))
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(limits.check_user(Route::CreateTicket, "bob").is_ok());
        assert!(limits.check_user(Route::GetTicket, "ann").is_ok());
    }

    #[test]
    fn off_means_off() {
        let limits = RateLimits::new(false);
        for _ in 0..100 {
            assert!(limits.check_user(Route::CreateTicket, "ann").is_ok());
        }
    }
}
