//! The closed vocabularies of the contract: who a user is, which support team a ticket needs, how
//! urgent it is and whether it is open. Their spellings are the API specification's and are part of the wire
//! format, so they are pinned by tests.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, in the contract's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The spelling used on the wire and in storage.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue {
                        allowed: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// A string that is not one of a vocabulary's values; carries the allowed ones for the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownValue {
    /// The spellings that would have been accepted.
    pub allowed: &'static [&'static str],
}

wire_enum! {
    /// The role a partner backend gives a user in its JWT.
    UserRole {
        /// A guest without an account.
        TempUser => "TEMP_USER",
        /// A customer with an account.
        Customer => "CUSTOMER",
        /// A member of the support team.
        Agent => "AGENT",
        /// An administrator of the support team.
        Admin => "ADMIN",
    }
}

impl UserRole {
    /// Staff see and act on every ticket; customers and guests only on their own.
    pub fn is_staff(self) -> bool {
        matches!(self, UserRole::Agent | UserRole::Admin)
    }
}

wire_enum! {
    /// Which support team a ticket needs; each rank also opens the ticket to every rank above it.
    SupportRole {
        /// First-line support.
        General => "GENERAL",
        /// Developers.
        Technical => "TECHNICAL",
        /// Managers.
        Manager => "MANAGER",
        /// Administrators.
        Admin => "ADMIN",
    }
}

wire_enum! {
    /// How urgent a ticket is.
    IssueLevel {
        /// The default.
        Normal => "NORMAL",
        /// Needs attention soon.
        Urgent => "URGENT",
        /// Needs attention now.
        Critical => "CRITICAL",
    }
}

wire_enum! {
    /// Whether a ticket takes messages.
    TicketStatus {
        /// Taking messages.
        Open => "OPEN",
        /// Closed; staff may reopen it.
        Closed => "CLOSED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_spellings_are_the_seeds() {
        let users: Vec<_> = UserRole::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(users, ["TEMP_USER", "CUSTOMER", "AGENT", "ADMIN"]);
        let support: Vec<_> = SupportRole::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(support, ["GENERAL", "TECHNICAL", "MANAGER", "ADMIN"]);
        let levels: Vec<_> = IssueLevel::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(levels, ["NORMAL", "URGENT", "CRITICAL"]);
        assert_eq!(
            serde_json::to_string(&UserRole::TempUser).unwrap(),
            "\"TEMP_USER\""
        );
        assert_eq!("CLOSED".parse::<TicketStatus>(), Ok(TicketStatus::Closed));
    }

    #[test]
    fn unknown_spelling_is_refused_with_the_allowed_ones() {
        let err = "admin".parse::<UserRole>().unwrap_err();
        assert_eq!(err.allowed, ["TEMP_USER", "CUSTOMER", "AGENT", "ADMIN"]);
    }

    #[test]
    fn only_agents_and_admins_are_staff() {
        assert!(UserRole::Agent.is_staff() && UserRole::Admin.is_staff());
        assert!(!UserRole::Customer.is_staff() && !UserRole::TempUser.is_staff());
    }
}
