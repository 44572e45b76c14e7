//! Stripe customer linking: the `customer` (`cus_…`) an inbound Stripe event carries is
//! recorded for the event's user once the event is resolved, so the billing portal works.

use keel_core::ids::UserId;
use keel_store::{InboxEvent, InboxResolution, TenantScope};

use crate::AppState;

/// The provider name customers are kept under (the one checkout reads).
const PROVIDER: &str = "stripe";

/// The longest customer id kept (Stripe's are far shorter).
const MAX_LEN: usize = 255;

/// The customer to record for `event`: its user (named by the resolution) and the
/// `data.object.customer` of a Stripe event, when it is a well-formed `cus_…` id.
pub(crate) fn customer_of(
    event: &InboxEvent,
    resolution: &InboxResolution,
) -> Option<(TenantScope, UserId, String)> {
    if event.provider != PROVIDER {
        return None;
    }
    let (scope, user) = match resolution {
        InboxResolution::Change(change) => (change.scope, change.subscription.user_id),
        InboxResolution::Link { scope, user, .. } => (*scope, *user),
        InboxResolution::Ignore { .. } | InboxResolution::Fail { .. } => return None,
    };
    let id = event.payload.pointer("/data/object/customer")?.as_str()?;
    well_formed(id).then(|| (scope, user, id.to_string()))
}

/// `cus_` followed by letters and digits.
fn well_formed(id: &str) -> bool {
    id.len() <= MAX_LEN
        && id
            .strip_prefix("cus_")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// Records the customer; a failure is logged (the next event carrying it records it again).
pub(crate) async fn record(
    state: &AppState,
    (scope, user, customer): (TenantScope, UserId, String),
) {
    if let Err(e) = state
        .store()
        .put_billing_customer(&scope, user, PROVIDER, &customer)
        .await
    {
        tracing::warn!(user = %user, error = %e, "cannot record the Stripe customer");
    }
}

#[cfg(test)]
mod tests {
    use super::well_formed;

    #[test]
    fn only_stripe_customer_ids_are_kept() {
        assert!(well_formed("cus_NffrFeUfNV2Hib"));
        assert!(!well_formed("cus_"));
        assert!(!well_formed("sub_123"));
        assert!(!well_formed("cus_12 3"));
        assert!(!well_formed(&format!("cus_{}", "a".repeat(300))));
    }
}
