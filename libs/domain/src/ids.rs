//! Time-ordered identifiers (UUIDv7, DESIGN.md §4), one newtype per kind of object so that a
//! record id can never be passed where an organisation id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A new, time-ordered (UUIDv7) id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// Wraps an id read back from storage or the wire.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

id_type!(
    /// An organisation (R-SRC-1).
    OrgId
);
id_type!(
    /// A connected system (application) of an organisation (R-SRC-1).
    SystemId
);
id_type!(
    /// A stored record (R-DATA-3).
    RecordId
);
id_type!(
    /// A receipt handed back for an accepted submission (R-ING-1).
    ReceiptId
);
id_type!(
    /// An API key (R-SEC-1).
    ApiKeyId
);
id_type!(
    /// A person's account (R-SEC-5, R-SEC-6): administrators, operators, analysts, auditors.
    UserId
);
id_type!(
    /// An OAuth2 client of a connected system (R-SEC-1): its `client_id`.
    OAuthClientId
);
id_type!(
    /// An OAuth2 access token issued to a client (R-SEC-1).
    AccessTokenId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_time_ordered_and_round_trip() {
        let a = RecordId::new();
        let b = RecordId::new();
        assert!(a < b);
        assert_eq!(a.to_string().parse::<RecordId>().ok(), Some(a));
    }
}
