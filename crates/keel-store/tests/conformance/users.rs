//! Users and their personal tenants.

use keel_core::ids::{TenantId, UserId};
use keel_store::{Backend, NewUser, StoreError, TenantScope};

use crate::fixtures::{self, new_user, new_wallet_user, race, CALLERS};
use crate::{harness, harness_with};

async fn a_created_user_reads_back_exactly(backend: Backend) {
    let h = harness(backend).await;
    let new = new_user();
    let created = h.store.create_user(new.clone()).await.unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.tenant_id, new.tenant_id);
    assert_eq!(created.email, new.email);
    assert_eq!(created.password_hash, new.password_hash);
    assert_eq!(created.wallet_address, None);
    assert_eq!(created.role, "user");
    let scope = TenantScope::new(new.tenant_id);
    assert_eq!(h.store.get_user(&scope, new.id).await.unwrap(), created);
    let email = new.email.as_deref().unwrap();
    let found = h.store.find_user_by_email(email).await.unwrap();
    assert_eq!(found, Some(created));
}

async fn a_wallet_user_is_found_by_address(backend: Backend) {
    let h = harness(backend).await;
    let new = new_wallet_user();
    let created = h.store.create_user(new.clone()).await.unwrap();
    assert_eq!(created.email, None);
    assert_eq!(created.password_hash, None);
    let address = new.wallet_address.as_deref().unwrap();
    let found = h.store.find_user_by_wallet(address).await.unwrap();
    assert_eq!(found, Some(created));
    // Users without an email or without a wallet do not collide with each other.
    h.store.create_user(new_wallet_user()).await.unwrap();
    h.store.create_user(new_user()).await.unwrap();
    h.store.create_user(new_user()).await.unwrap();
}

async fn unknown_credentials_find_no_user(backend: Backend) {
    let h = harness(backend).await;
    h.store.create_user(new_user()).await.unwrap();
    let email = fixtures::email();
    assert_eq!(h.store.find_user_by_email(&email).await.unwrap(), None);
    let wallet = fixtures::wallet();
    assert_eq!(h.store.find_user_by_wallet(&wallet).await.unwrap(), None);
}

async fn a_taken_email_or_wallet_is_a_conflict_and_creates_nothing(backend: Backend) {
    let h = harness(backend).await;
    let first = h.store.create_user(new_user()).await.unwrap();
    let same_email = NewUser {
        email: first.email.clone(),
        ..new_user()
    };
    let err = h.store.create_user(same_email.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // The tenant was rolled back with the user: its id can be used again.
    let retry = NewUser {
        tenant_id: same_email.tenant_id,
        ..new_user()
    };
    h.store.create_user(retry).await.unwrap();
    let scope = TenantScope::new(same_email.tenant_id);
    let missing = h.store.get_user(&scope, same_email.id).await;
    assert!(matches!(missing, Err(StoreError::NotFound)), "{missing:?}");

    let wallet_user = h.store.create_user(new_wallet_user()).await.unwrap();
    let same_wallet = NewUser {
        wallet_address: wallet_user.wallet_address.clone(),
        ..new_wallet_user()
    };
    let err = h.store.create_user(same_wallet).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
}

async fn users_of_another_tenant_are_not_found(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (other, _) = fixtures::user(&h.store).await;
    let stranger = TenantScope::new(TenantId::new());
    for wrong in [other, stranger] {
        let got = h.store.get_user(&wrong, user.id).await;
        assert!(matches!(got, Err(StoreError::NotFound)), "{got:?}");
        let set = h
            .store
            .set_password_hash(&wrong, user.id, "$argon2id$x")
            .await;
        assert!(matches!(set, Err(StoreError::NotFound)), "{set:?}");
    }
    assert_eq!(h.store.get_user(&scope, user.id).await.unwrap(), user);
    let unknown = h.store.get_user(&scope, UserId::new()).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

async fn a_new_password_hash_replaces_the_old_one(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let upgraded = "$argon2id$v=19$m=65536,t=3,p=4$bmV3$bmV3aGFzaA";
    h.store
        .set_password_hash(&scope, user.id, upgraded)
        .await
        .unwrap();
    let read = h.store.get_user(&scope, user.id).await.unwrap();
    assert_eq!(read.password_hash.as_deref(), Some(upgraded));
    assert_eq!(read.created_at, user.created_at);
    let by_email = h.store.find_user_by_email(user.email.as_deref().unwrap());
    assert_eq!(by_email.await.unwrap(), Some(read));
}

async fn concurrent_sign_ups_with_one_email_create_exactly_one_user(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let email = fixtures::email();
    let attempts: Vec<NewUser> = (0..CALLERS)
        .map(|_| NewUser {
            email: Some(email.clone()),
            ..new_user()
        })
        .collect();
    let results = race(|i| {
        let store = h.store.clone();
        let user = attempts[i].clone();
        async move { store.create_user(user).await }
    })
    .await;
    let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let conflicts = results
        .iter()
        .filter(|r| matches!(r, Err(StoreError::Conflict(_))))
        .count();
    assert_eq!(conflicts, CALLERS - 1, "{results:?}");
    let found = h.store.find_user_by_email(&email).await.unwrap();
    assert_eq!(found.as_ref(), Some(winners[0]));
}

async fn a_time_zone_change_is_refused_until_the_last_one_is_old_enough(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    assert_eq!(user.timezone, None);
    let t0 = fixtures::now();
    let week = chrono::Duration::days(7);
    // The first choice is always allowed.
    let set = h
        .store
        .set_timezone(&scope, user.id, Some("Europe/Paris"), t0, t0 - week);
    assert!(set.await.unwrap());
    let read = h.store.get_user(&scope, user.id).await.unwrap();
    assert_eq!(read.timezone.as_deref(), Some("Europe/Paris"));
    // A day later, too soon: nothing changes.
    let t1 = t0 + chrono::Duration::days(1);
    let set = h
        .store
        .set_timezone(&scope, user.id, Some("Asia/Tokyo"), t1, t1 - week);
    assert!(!set.await.unwrap());
    let read = h.store.get_user(&scope, user.id).await.unwrap();
    assert_eq!(read.timezone.as_deref(), Some("Europe/Paris"));
    // A week after the last change it may change (or be cleared) again.
    let t2 = t0 + week;
    let set = h.store.set_timezone(&scope, user.id, None, t2, t2 - week);
    assert!(set.await.unwrap());
    assert_eq!(
        h.store.get_user(&scope, user.id).await.unwrap().timezone,
        None
    );
    // Another tenant's scope cannot touch it.
    let other = TenantScope::new(TenantId::new());
    let err = h
        .store
        .set_timezone(&other, user.id, Some("UTC"), t2, t2)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

on_both_backends!(
    a_time_zone_change_is_refused_until_the_last_one_is_old_enough,
    a_created_user_reads_back_exactly,
    a_wallet_user_is_found_by_address,
    unknown_credentials_find_no_user,
    a_taken_email_or_wallet_is_a_conflict_and_creates_nothing,
    users_of_another_tenant_are_not_found,
    a_new_password_hash_replaces_the_old_one,
    concurrent_sign_ups_with_one_email_create_exactly_one_user,
);
