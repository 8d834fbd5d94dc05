//! Signed webhooks for partner backends (ADR 0019, `docs/webhooks.md`): with `WEBHOOK_URL` and
//! `WEBHOOK_SECRET` set, every event after the webhook checkpoint is POSTed to the partner in log
//! order, signed the Standard Webhooks way, retried until taken. Like the Discord bridge it is a
//! follower of the global stream with a durable checkpoint, run by one instance at a time (a
//! lease on MongoDB). Settings are read here, the delivery loop is [`deliver`], the operator's
//! commands are [`command`].

pub mod body;
pub mod command;
pub mod deliver;
pub mod lease;
pub mod schedule;
pub mod sign;
pub mod state;

use crate::config::{ConfigError, invalid};
use schedule::RetrySchedule;
use sign::SigningKey;
use std::collections::BTreeSet;
use std::fmt;

/// Every event type name a partner can receive: the serialized `type` of `TicketEvent`.
pub const EVENT_TYPES: [&str; 16] = [
    "TicketOpened",
    "MessagePosted",
    "MessageEdited",
    "MessageDeleted",
    "SupportRoleChanged",
    "IssueLevelChanged",
    "TicketClosed",
    "TicketReopened",
    "AssigneeChanged",
    "TagsChanged",
    "FeedbackGiven",
    "SlaBreached",
    "ReplySaved",
    "ReplyDeleted",
    "UserBlocked",
    "UserUnblocked",
];

/// The partner's URL; it may carry a token, so it is never printed.
#[derive(Clone)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// The URL itself, for the HTTP client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookUrl(redacted)")
    }
}

/// The partner webhook's settings; all or nothing.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// `WEBHOOK_URL`.
    pub url: WebhookUrl,
    /// `WEBHOOK_SECRET` (`whsec_…`), as the signing key.
    pub secret: SigningKey,
    /// `WEBHOOK_EVENTS`: only these types are delivered; `None` is every type.
    pub events: Option<BTreeSet<&'static str>>,
    /// `WEBHOOK_RETRY_SCHEDULE`: the waits between attempts at one event.
    pub retry_schedule: RetrySchedule,
}

impl WebhookConfig {
    /// Reads the `WEBHOOK_*` settings through `get` (trimmed, empty as unset). Every one is
    /// checked even while webhooks are off, so a typo shows the day it is made. `None`: off.
    pub fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Self>, ConfigError> {
        let events = get("WEBHOOK_EVENTS")
            .map(|v| parse_events(&v))
            .transpose()?;
        let retry_schedule = match get("WEBHOOK_RETRY_SCHEDULE") {
            None => RetrySchedule::default(),
            Some(v) => RetrySchedule::parse(&v)
                .map_err(|reason| invalid("WEBHOOK_RETRY_SCHEDULE", reason))?,
        };
        let secret = get("WEBHOOK_SECRET")
            .map(|v| {
                SigningKey::from_secret(&v).map_err(|reason| invalid("WEBHOOK_SECRET", reason))
            })
            .transpose()?;
        let url = match get("WEBHOOK_URL") {
            None => None,
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                Some(WebhookUrl(url))
            }
            // The value is not repeated: it may hold a token.
            Some(_) => return Err(invalid("WEBHOOK_URL", "expected an http(s) URL")),
        };
        match (url, secret) {
            (Some(url), Some(secret)) => Ok(Some(WebhookConfig {
                url,
                secret,
                events,
                retry_schedule,
            })),
            (Some(_), None) => Err(invalid(
                "WEBHOOK_SECRET",
                "is required when WEBHOOK_URL is set (or unset both: no webhooks)",
            )),
            (None, Some(_)) => Err(invalid(
                "WEBHOOK_URL",
                "is required when WEBHOOK_SECRET is set (or unset both: no webhooks)",
            )),
            (None, None) => Ok(None),
        }
    }

    /// Whether events of type `name` are delivered.
    pub fn wants(&self, name: &str) -> bool {
        self.events.as_ref().is_none_or(|set| set.contains(name))
    }

    /// `every event` or the chosen types, for the start-up log.
    pub fn events_summary(&self) -> String {
        match &self.events {
            None => "every event".into(),
            Some(set) => set.iter().copied().collect::<Vec<_>>().join(","),
        }
    }
}

fn parse_events(text: &str) -> Result<BTreeSet<&'static str>, ConfigError> {
    let mut set = BTreeSet::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(known) = EVENT_TYPES.iter().find(|t| **t == name) else {
            return Err(invalid(
                "WEBHOOK_EVENTS",
                format!(
                    "unknown event type {name:?}; expected a comma-separated list of {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        };
        set.insert(*known);
    }
    if set.is_empty() {
        return Err(invalid("WEBHOOK_EVENTS", "lists no event type"));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use ticketd_events::{IssueLevel, SupportRole, TicketEvent, UserRole};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn read(vars: &[(&str, &str)]) -> Result<Option<WebhookConfig>, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        WebhookConfig::from_lookup(&|k: &str| map.get(k).cloned())
    }

    fn refused(vars: &[(&str, &str)]) -> &'static str {
        match read(vars) {
            Err(ConfigError::Invalid { name, .. }) => name,
            other => panic!("{vars:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn the_type_names_are_the_events_own() {
        let level = IssueLevel::Normal;
        let role = SupportRole::General;
        let every = [
            TicketEvent::TicketOpened {
                user_id: String::new(),
                user_name: String::new(),
                user_email: String::new(),
                user_role: UserRole::Customer,
                topic: String::new(),
                description: String::new(),
                support_role: role,
                issue_level: level,
            },
            TicketEvent::MessagePosted {
                message_id: String::new(),
                author_id: String::new(),
                author_name: String::new(),
                author_role: UserRole::Customer,
                content: String::new(),
                attachments: vec![],
                internal: false,
            },
            TicketEvent::MessageEdited {
                message_id: String::new(),
                content: String::new(),
                attachments: None,
            },
            TicketEvent::MessageDeleted {
                message_id: String::new(),
            },
            TicketEvent::SupportRoleChanged {
                from: role,
                to: role,
            },
            TicketEvent::IssueLevelChanged {
                from: level,
                to: level,
            },
            TicketEvent::TicketClosed { reason: None },
            TicketEvent::TicketReopened {},
            TicketEvent::AssigneeChanged {
                from: None,
                to: None,
                to_name: None,
            },
            TicketEvent::TagsChanged { tags: vec![] },
            TicketEvent::FeedbackGiven {
                rating: 5,
                comment: None,
            },
            TicketEvent::SlaBreached {
                target: ticketd_events::SlaTarget::Resolution,
                due_at: 0,
            },
            TicketEvent::ReplySaved {
                name: String::new(),
                content: String::new(),
            },
            TicketEvent::ReplyDeleted {
                name: String::new(),
            },
            TicketEvent::UserBlocked {
                user_id: String::new(),
                reason: None,
            },
            TicketEvent::UserUnblocked {
                user_id: String::new(),
            },
        ];
        let names: Vec<_> = every.iter().map(TicketEvent::type_name).collect();
        assert_eq!(names, EVENT_TYPES);
        for event in &every {
            assert_eq!(
                serde_json::to_value(event).unwrap()["type"],
                event.type_name()
            );
        }
    }

    #[test]
    fn off_unless_both_are_set() {
        assert!(read(&[]).unwrap().is_none());
        assert_eq!(
            refused(&[("WEBHOOK_URL", "http://127.0.0.1:9/h")]),
            "WEBHOOK_SECRET"
        );
        assert_eq!(refused(&[("WEBHOOK_SECRET", SECRET)]), "WEBHOOK_URL");
        let on = read(&[
            ("WEBHOOK_URL", "http://127.0.0.1:9/h"),
            ("WEBHOOK_SECRET", SECRET),
        ])
        .unwrap()
        .unwrap();
        assert!(on.wants("TicketOpened") && on.wants("MessageDeleted"));
        assert_eq!(on.retry_schedule, RetrySchedule::default());
    }

    #[test]
    fn bad_values_are_refused_even_while_off() {
        assert_eq!(
            refused(&[("WEBHOOK_SECRET", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")]),
            "WEBHOOK_SECRET"
        );
        assert_eq!(
            refused(&[("WEBHOOK_EVENTS", "TicketOpened,TicketExploded")]),
            "WEBHOOK_EVENTS"
        );
        assert_eq!(refused(&[("WEBHOOK_EVENTS", "message")]), "WEBHOOK_EVENTS");
        assert_eq!(
            refused(&[("WEBHOOK_RETRY_SCHEDULE", "5,soon")]),
            "WEBHOOK_RETRY_SCHEDULE"
        );
        assert_eq!(
            refused(&[("WEBHOOK_URL", "ftp://x"), ("WEBHOOK_SECRET", SECRET)]),
            "WEBHOOK_URL"
        );
    }

    #[test]
    fn events_filter_and_secrets_stay_out_of_debug() {
        let url = "https://partner.example/hook?token=s3cr3t-token";
        let on = read(&[
            ("WEBHOOK_URL", url),
            ("WEBHOOK_SECRET", SECRET),
            ("WEBHOOK_EVENTS", " TicketOpened , TicketClosed "),
            ("WEBHOOK_RETRY_SCHEDULE", "0.05,0.1"),
        ])
        .unwrap()
        .unwrap();
        assert!(on.wants("TicketClosed") && !on.wants("MessagePosted"));
        let debug = format!("{on:?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("MfKQ9r8"),
            "{debug}"
        );
    }
}
