//! Identifiers of reconciliation's own objects (R-REC). Both are *derived* from a record id,
//! never drawn at random, so that re-running reconciliation over the same records gives the
//! same ids.

use std::fmt;
use std::str::FromStr;

use etx_domain::RecordId;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! derived_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an id read back from storage or the wire.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
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
    };
}

derived_id!(
    /// A canonical record's id (R-REC): the id of its oldest contributing record, so it is
    /// time-ordered (UUIDv7), deterministic, and the same whatever order records arrive in.
    CanonicalId
);

derived_id!(
    /// A conflict's id (R-REC): the id of the record whose reconciliation opened it (a record
    /// opens at most one conflict).
    ConflictId
);

impl CanonicalId {
    /// The id of a canonical record whose oldest record is `record`.
    pub const fn founded_by(record: RecordId) -> Self {
        Self(record.as_uuid())
    }
}

impl ConflictId {
    /// The id of the conflict opened by `record`.
    pub const fn opened_by(record: RecordId) -> Self {
        Self(record.as_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_follow_their_record_and_round_trip() {
        let r = RecordId::new();
        let c = CanonicalId::founded_by(r);
        assert_eq!(c.as_uuid(), r.as_uuid());
        assert_eq!(ConflictId::opened_by(r).as_uuid(), r.as_uuid());
        assert_eq!(c.to_string().parse::<CanonicalId>().ok(), Some(c));
        assert_eq!(serde_json::to_string(&c).ok(), Some(format!("\"{r}\"")));
    }
}
