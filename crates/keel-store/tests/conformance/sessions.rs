//! Sessions and refresh-token rotation.

use chrono::{SubsecRound, TimeDelta, Utc};
use keel_core::ids::{RefreshTokenId, SessionId, TenantId, UserId};
use keel_store::{Backend, RefreshTokenRecord, Rotation, StoreError, TenantScope};

use crate::fixtures::{
    self, hours, new_session, new_token, now, race, session, session_until, CALLERS,
};
use crate::{harness, harness_with};

async fn a_session_and_its_first_refresh_token_read_back_exactly(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    // Nanoseconds in: what is returned at write equals what is read back.
    let expires_at = Utc::now() + hours(24);
    let new = new_session(user.id, expires_at);
    let token = new_token(expires_at);
    let created = h
        .store
        .create_session(&scope, new.clone(), token.clone())
        .await
        .unwrap();
    assert_eq!(created.id, new.id);
    assert_eq!(created.tenant_id, user.tenant_id);
    assert_eq!(created.user_id, user.id);
    assert_eq!(created.device_name, new.device_name);
    assert_eq!(created.user_agent, new.user_agent);
    assert_eq!(created.ip, new.ip);
    assert_eq!(created.last_seen_at, created.created_at);
    assert_eq!(created.revoked_at, None);
    assert_eq!(created.revoked_reason, None);
    assert_eq!(created.expires_at, expires_at.trunc_subsecs(6));
    assert_eq!(h.store.get_session(&scope, new.id).await.unwrap(), created);
    assert_eq!(
        h.store.list_sessions(&scope, user.id).await.unwrap(),
        vec![created.clone()]
    );
    let stored = h.store.find_refresh_token(&token.token_hash).await.unwrap();
    assert_eq!(
        stored,
        Some(RefreshTokenRecord {
            id: token.id,
            tenant_id: user.tenant_id,
            session_id: created.id,
            expires_at: created.expires_at,
            used_at: None,
            successor_id: None,
        })
    );
    assert_eq!(
        h.store.find_refresh_token(&fixtures::hash()).await.unwrap(),
        None
    );
}

async fn a_reused_refresh_token_hash_is_a_conflict_and_opens_no_session(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (_, token) = session(&h.store, &scope, user.id).await;
    let again = new_session(user.id, now() + hours(1));
    let reused = keel_store::NewRefreshToken {
        id: RefreshTokenId::new(),
        ..token
    };
    let err = h
        .store
        .create_session(&scope, again.clone(), reused)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    let got = h.store.get_session(&scope, again.id).await;
    assert!(matches!(got, Err(StoreError::NotFound)), "{got:?}");
}

async fn sessions_of_another_tenant_are_not_found(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (other, _) = fixtures::user(&h.store).await;
    let (live, token) = session(&h.store, &scope, user.id).await;
    for wrong in [other, TenantScope::new(TenantId::new())] {
        let got = h.store.get_session(&wrong, live.id).await;
        assert!(matches!(got, Err(StoreError::NotFound)), "{got:?}");
        assert_eq!(
            h.store.list_sessions(&wrong, user.id).await.unwrap(),
            vec![]
        );
        let revoke = h.store.revoke_session(&wrong, user.id, live.id, "x").await;
        assert!(matches!(revoke, Err(StoreError::NotFound)), "{revoke:?}");
        let all = h.store.revoke_user_sessions(&wrong, user.id, None, "x");
        assert_eq!(all.await.unwrap(), 0);
        let open = h.store.create_session(
            &wrong,
            new_session(user.id, now() + hours(1)),
            new_token(now() + hours(1)),
        );
        assert!(matches!(open.await, Err(StoreError::NotFound)));
        let child = new_token(now() + hours(1));
        let rotate = h.store.rotate_refresh_token(&wrong, token.id, child, now());
        assert!(matches!(rotate.await, Err(StoreError::NotFound)));
    }
    assert_eq!(h.store.get_session(&scope, live.id).await.unwrap(), live);
    let stored = h.store.find_refresh_token(&token.token_hash).await.unwrap();
    assert_eq!(stored.unwrap().used_at, None);
}

async fn revoking_another_users_session_is_not_found(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (live, _) = session(&h.store, &scope, user.id).await;
    let revoke = h
        .store
        .revoke_session(&scope, UserId::new(), live.id, "revoked")
        .await;
    assert!(matches!(revoke, Err(StoreError::NotFound)), "{revoke:?}");
    let unknown = h
        .store
        .revoke_session(&scope, user.id, SessionId::new(), "revoked")
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
    let open = h.store.create_session(
        &scope,
        new_session(UserId::new(), now() + hours(1)),
        new_token(now() + hours(1)),
    );
    assert!(matches!(open.await, Err(StoreError::NotFound)));
    assert_eq!(h.store.get_session(&scope, live.id).await.unwrap(), live);
}

async fn listed_sessions_exclude_revoked_and_expired_ones_newest_first(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (first, _) = session(&h.store, &scope, user.id).await;
    let (revoked, _) = session(&h.store, &scope, user.id).await;
    let (_expired, _) = session_until(&h.store, &scope, user.id, now() - hours(1)).await;
    let (last, _) = session(&h.store, &scope, user.id).await;
    h.store
        .revoke_session(&scope, user.id, revoked.id, "logout")
        .await
        .unwrap();
    let listed = h.store.list_sessions(&scope, user.id).await.unwrap();
    assert_eq!(listed, vec![last, first]);
}

async fn revoking_a_session_twice_keeps_the_first_time_and_reason(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (live, _) = session(&h.store, &scope, user.id).await;
    let before = now();
    h.store
        .revoke_session(&scope, user.id, live.id, "logout")
        .await
        .unwrap();
    let once = h.store.get_session(&scope, live.id).await.unwrap();
    assert_eq!(once.revoked_reason.as_deref(), Some("logout"));
    assert!(once.revoked_at.unwrap() >= before);
    h.store
        .revoke_session(&scope, user.id, live.id, "refresh_reuse")
        .await
        .unwrap();
    assert_eq!(h.store.get_session(&scope, live.id).await.unwrap(), once);
    assert_eq!(
        once,
        keel_store::SessionRecord {
            revoked_at: once.revoked_at,
            revoked_reason: Some("logout".into()),
            ..live
        }
    );
}

async fn revoking_all_sessions_but_one_keeps_it_and_counts_the_rest(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (keep, _) = session(&h.store, &scope, user.id).await;
    let (a, _) = session(&h.store, &scope, user.id).await;
    let (b, _) = session(&h.store, &scope, user.id).await;
    let (gone, _) = session(&h.store, &scope, user.id).await;
    session_until(&h.store, &scope, user.id, now() - hours(1)).await;
    h.store
        .revoke_session(&scope, user.id, gone.id, "logout")
        .await
        .unwrap();
    let (other_scope, other) = fixtures::user(&h.store).await;
    let (bystander, _) = session(&h.store, &other_scope, other.id).await;

    let ended = h
        .store
        .revoke_user_sessions(&scope, user.id, Some(keep.id), "logout_all")
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert_eq!(
        h.store.list_sessions(&scope, user.id).await.unwrap(),
        vec![keep.clone()]
    );
    for id in [a.id, b.id] {
        let s = h.store.get_session(&scope, id).await.unwrap();
        assert_eq!(s.revoked_reason.as_deref(), Some("logout_all"));
    }
    let untouched = h.store.get_session(&scope, gone.id).await.unwrap();
    assert_eq!(untouched.revoked_reason.as_deref(), Some("logout"));
    let everyone = h
        .store
        .revoke_user_sessions(&scope, user.id, None, "password_change");
    assert_eq!(everyone.await.unwrap(), 1);
    assert_eq!(
        h.store.list_sessions(&scope, user.id).await.unwrap(),
        vec![]
    );
    let again = h.store.revoke_user_sessions(&scope, user.id, None, "x");
    assert_eq!(again.await.unwrap(), 0);
    let listed = h.store.list_sessions(&other_scope, other.id).await.unwrap();
    assert_eq!(listed, vec![bystander]);
}

async fn rotating_a_refresh_token_spends_it_and_stores_the_successor(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (live, token) = session(&h.store, &scope, user.id).await;
    let child = new_token(live.expires_at);
    let at = now() + TimeDelta::seconds(5);
    let rotated = h
        .store
        .rotate_refresh_token(&scope, token.id, child.clone(), at)
        .await
        .unwrap();
    assert_eq!(rotated, Rotation::Rotated);
    let parent = h.store.find_refresh_token(&token.token_hash).await.unwrap();
    let parent = parent.unwrap();
    assert_eq!(
        (parent.used_at, parent.successor_id),
        (Some(at), Some(child.id))
    );
    let stored = h.store.find_refresh_token(&child.token_hash).await.unwrap();
    assert_eq!(
        stored,
        Some(RefreshTokenRecord {
            id: child.id,
            tenant_id: user.tenant_id,
            session_id: live.id,
            expires_at: live.expires_at,
            used_at: None,
            successor_id: None,
        })
    );
    let seen = h.store.get_session(&scope, live.id).await.unwrap();
    assert_eq!(seen.last_seen_at, at);
    // The successor rotates in turn.
    let grandchild = new_token(live.expires_at);
    let next = h
        .store
        .rotate_refresh_token(&scope, child.id, grandchild, at);
    assert_eq!(next.await.unwrap(), Rotation::Rotated);
}

async fn rotating_a_spent_token_changes_nothing_and_names_its_successor(backend: Backend) {
    let h = harness(backend).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (live, token) = session(&h.store, &scope, user.id).await;
    let (first, at) = (new_token(live.expires_at), now());
    let rotated = h
        .store
        .rotate_refresh_token(&scope, token.id, first.clone(), at)
        .await;
    assert_eq!(rotated.unwrap(), Rotation::Rotated);
    let second = new_token(live.expires_at);
    let later = at + TimeDelta::seconds(30);
    let again = h
        .store
        .rotate_refresh_token(&scope, token.id, second.clone(), later)
        .await
        .unwrap();
    assert_eq!(
        again,
        Rotation::AlreadyUsed {
            used_at: at,
            successor_id: Some(first.id)
        }
    );
    assert_eq!(
        h.store
            .find_refresh_token(&second.token_hash)
            .await
            .unwrap(),
        None
    );
    let seen = h.store.get_session(&scope, live.id).await.unwrap();
    assert_eq!(seen.last_seen_at, at);
    let unknown = h
        .store
        .rotate_refresh_token(&scope, RefreshTokenId::new(), second, later)
        .await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

async fn concurrent_rotations_of_one_token_have_exactly_one_winner(backend: Backend) {
    let h = harness_with(backend, CALLERS as u32).await;
    let (scope, user) = fixtures::user(&h.store).await;
    let (live, token) = session(&h.store, &scope, user.id).await;
    let children: Vec<_> = (0..CALLERS).map(|_| new_token(live.expires_at)).collect();
    let (parent, at) = (token.id, now());
    let results = race(|i| {
        let (store, child) = (h.store.clone(), children[i].clone());
        async move { store.rotate_refresh_token(&scope, parent, child, at).await }
    })
    .await;
    let results: Vec<Rotation> = results.into_iter().map(Result::unwrap).collect();
    let winners: Vec<usize> = (0..CALLERS)
        .filter(|&i| results[i] == Rotation::Rotated)
        .collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let winner = &children[winners[0]];
    let lost = Rotation::AlreadyUsed {
        used_at: at,
        successor_id: Some(winner.id),
    };
    let losers = results.iter().filter(|r| **r == lost).count();
    assert_eq!(losers, CALLERS - 1, "{results:?}");
    let mut stored = Vec::new();
    for child in &children {
        if let Some(found) = h.store.find_refresh_token(&child.token_hash).await.unwrap() {
            stored.push(found.id);
        }
    }
    assert_eq!(stored, vec![winner.id]);
}

on_both_backends!(
    a_session_and_its_first_refresh_token_read_back_exactly,
    a_reused_refresh_token_hash_is_a_conflict_and_opens_no_session,
    sessions_of_another_tenant_are_not_found,
    revoking_another_users_session_is_not_found,
    listed_sessions_exclude_revoked_and_expired_ones_newest_first,
    revoking_a_session_twice_keeps_the_first_time_and_reason,
    revoking_all_sessions_but_one_keeps_it_and_counts_the_rest,
    rotating_a_refresh_token_spends_it_and_stores_the_successor,
    rotating_a_spent_token_changes_nothing_and_names_its_successor,
    concurrent_rotations_of_one_token_have_exactly_one_winner,
);
