//! Typed, prefixed identifiers (`ten_…`, `usr_…`) backed by time-ordered UUIDv7.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why an id string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} id: expected `{prefix}_` followed by 32 hex digits")]
pub struct InvalidId {
    /// The kind of id that was expected, e.g. `tenant`.
    pub kind: &'static str,
    /// The prefix that was expected, e.g. `ten`.
    pub prefix: &'static str,
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            /// The string prefix of this id kind.
            pub const PREFIX: &'static str = $prefix;

            /// A new time-ordered id.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
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
                write!(f, "{}_{}", $prefix, self.0.simple())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let err = InvalidId { kind: $kind, prefix: $prefix };
                let rest = s
                    .strip_prefix($prefix)
                    .and_then(|r| r.strip_prefix('_'))
                    .ok_or(err.clone())?;
                if rest.len() != 32 {
                    return Err(err);
                }
                Uuid::try_parse(rest).map(Self).map_err(|_| err)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A tenant: the unit of isolation every stored row belongs to.
    TenantId, "ten", "tenant"
);
typed_id!(
    /// A product user.
    UserId, "usr", "user"
);
typed_id!(
    /// An audit event.
    AuditId, "aud", "audit event"
);

typed_id!(
    /// A sign-in session of a product user or an admin.
    SessionId, "ses", "session"
);
typed_id!(
    /// One refresh token of a session (each refresh makes a successor).
    RefreshTokenId, "rtk", "refresh token"
);
typed_id!(
    /// An API key.
    ApiKeyId, "key", "API key"
);
typed_id!(
    /// An operator account of the admin console.
    AdminId, "adm", "admin account"
);
typed_id!(
    /// A wallet sign-in challenge.
    ChallengeId, "wch", "wallet challenge"
);

typed_id!(
    /// A quota reservation.
    ReservationId, "res", "reservation"
);
typed_id!(
    /// A job: one run of a manifest-defined state machine.
    JobId, "job", "job"
);

typed_id!(
    /// A safety precheck hit recorded by the gateway.
    SafetyEventId, "sev", "safety event"
);
typed_id!(
    /// An inbound webhook delivery kept in the inbox.
    InboxEventId, "whk", "webhook event"
);
typed_id!(
    /// An outbound webhook endpoint a product registered.
    EndpointId, "ep", "webhook endpoint"
);
typed_id!(
    /// An outbound webhook message (one event, in the outbox).
    MessageId, "msg", "webhook message"
);
typed_id!(
    /// One delivery attempt of a webhook message to an endpoint.
    AttemptId, "att", "webhook attempt"
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_round_trip_through_their_prefixed_form() {
        let id = TenantId::new();
        let text = id.to_string();
        assert!(text.starts_with("ten_"));
        assert_eq!(text.len(), 4 + 32);
        assert_eq!(text.parse::<TenantId>().unwrap(), id);
    }

    #[test]
    fn ids_of_another_kind_or_malformed_are_refused() {
        let user = UserId::new().to_string();
        assert!(user.parse::<TenantId>().is_err());
        assert!("ten_xyz".parse::<TenantId>().is_err());
        assert!("ten".parse::<TenantId>().is_err());
        assert!("".parse::<TenantId>().is_err());
    }

    #[test]
    fn ids_made_later_sort_later() {
        let a = AuditId::new();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = AuditId::new();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }
}
