//! Admin accounts and their sessions.

use keel_core::ids::{AdminId, SessionId};
use keel_store::{AdminRecord, AdminSessionRecord, AdminUpdate, Backend, NewAdmin, StoreError};

use crate::fixtures::{self, admin_session, hours, new_admin, now};
use crate::harness;

async fn an_admin_reads_back_exactly(backend: Backend) {
    let h = harness(backend).await;
    assert_eq!(h.store.count_admins().await.unwrap(), 0);
    let new = new_admin();
    let created = h.store.create_admin(new.clone()).await.unwrap();
    assert_eq!(
        created,
        AdminRecord {
            id: new.id,
            email: new.email.clone(),
            password_hash: new.password_hash,
            role: "ENGINEER".into(),
            status: "active".into(),
            must_change_password: true,
            created_at: created.created_at,
        }
    );
    assert_eq!(h.store.get_admin(new.id).await.unwrap(), created);
    let found = h.store.find_admin_by_email(&new.email).await.unwrap();
    assert_eq!(found, Some(created.clone()));
    assert_eq!(h.store.list_admins().await.unwrap(), vec![created]);
    assert_eq!(h.store.count_admins().await.unwrap(), 1);
}

async fn unknown_admins_are_not_found(backend: Backend) {
    let h = harness(backend).await;
    h.store.create_admin(new_admin()).await.unwrap();
    let got = h.store.get_admin(AdminId::new()).await;
    assert!(matches!(got, Err(StoreError::NotFound)), "{got:?}");
    let email = fixtures::email();
    assert_eq!(h.store.find_admin_by_email(&email).await.unwrap(), None);
    let update = AdminUpdate {
        role: Some("SUPPORT".into()),
        ..Default::default()
    };
    let changed = h.store.update_admin(AdminId::new(), update).await;
    assert!(matches!(changed, Err(StoreError::NotFound)), "{changed:?}");
}

async fn a_taken_admin_email_is_a_conflict(backend: Backend) {
    let h = harness(backend).await;
    let first = h.store.create_admin(new_admin()).await.unwrap();
    let twin = NewAdmin {
        email: first.email.clone(),
        ..new_admin()
    };
    let err = h.store.create_admin(twin).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(h.store.count_admins().await.unwrap(), 1);
}

async fn admins_list_oldest_first(backend: Backend) {
    let h = harness(backend).await;
    let mut made = Vec::new();
    for _ in 0..3 {
        made.push(h.store.create_admin(new_admin()).await.unwrap());
    }
    assert_eq!(h.store.list_admins().await.unwrap(), made);
    assert_eq!(h.store.count_admins().await.unwrap(), 3);
}

async fn updating_an_admin_changes_only_the_given_fields(backend: Backend) {
    let h = harness(backend).await;
    let created = h.store.create_admin(new_admin()).await.unwrap();
    let bystander = h.store.create_admin(new_admin()).await.unwrap();
    let role = AdminUpdate {
        role: Some("SUPER_ADMIN".into()),
        ..Default::default()
    };
    let promoted = h.store.update_admin(created.id, role).await.unwrap();
    let expected = AdminRecord {
        role: "SUPER_ADMIN".into(),
        ..created.clone()
    };
    assert_eq!(promoted, expected);
    let rest = AdminUpdate {
        status: Some("disabled".into()),
        password_hash: Some("$argon2id$new".into()),
        must_change_password: Some(false),
        ..Default::default()
    };
    let changed = h.store.update_admin(created.id, rest).await.unwrap();
    let expected = AdminRecord {
        status: "disabled".into(),
        password_hash: "$argon2id$new".into(),
        must_change_password: false,
        ..expected
    };
    assert_eq!(changed, expected);
    let nothing = h.store.update_admin(created.id, AdminUpdate::default());
    assert_eq!(nothing.await.unwrap(), expected);
    assert_eq!(h.store.get_admin(created.id).await.unwrap(), expected);
    assert_eq!(h.store.get_admin(bystander.id).await.unwrap(), bystander);
}

async fn an_admin_session_is_found_by_its_token_hash(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.store.create_admin(new_admin()).await.unwrap();
    let session = admin_session(admin.id, now() + hours(8));
    let token = fixtures::hash();
    h.store
        .create_admin_session(session.clone(), token.clone())
        .await
        .unwrap();
    let found = h.store.find_admin_session(&token).await.unwrap();
    assert_eq!(found, Some(session));
    let unknown = h.store.find_admin_session(&fixtures::hash()).await;
    assert_eq!(unknown.unwrap(), None);
    let twin = admin_session(admin.id, now() + hours(8));
    let dup = h.store.create_admin_session(twin, token).await;
    assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
}

async fn revoking_an_admin_session_twice_keeps_the_first_time(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.store.create_admin(new_admin()).await.unwrap();
    let session = admin_session(admin.id, now() + hours(8));
    let token = fixtures::hash();
    h.store
        .create_admin_session(session.clone(), token.clone())
        .await
        .unwrap();
    let at = now();
    h.store.revoke_admin_session(session.id, at).await.unwrap();
    h.store
        .revoke_admin_session(session.id, at + hours(1))
        .await
        .unwrap();
    let found = h.store.find_admin_session(&token).await.unwrap();
    let revoked = AdminSessionRecord {
        revoked_at: Some(at),
        ..session
    };
    assert_eq!(found, Some(revoked));
    let unknown = h.store.revoke_admin_session(SessionId::new(), at).await;
    assert!(matches!(unknown, Err(StoreError::NotFound)), "{unknown:?}");
}

async fn revoking_all_admin_sessions_but_one_keeps_it(backend: Backend) {
    let h = harness(backend).await;
    let admin = h.store.create_admin(new_admin()).await.unwrap();
    let other = h.store.create_admin(new_admin()).await.unwrap();
    let mut sessions = Vec::new();
    for (who, expires_at) in [
        (admin.id, now() + hours(8)),
        (admin.id, now() + hours(8)),
        (admin.id, now() + hours(8)),
        (admin.id, now() - hours(1)),
        (other.id, now() + hours(8)),
    ] {
        let (session, token) = (admin_session(who, expires_at), fixtures::hash());
        h.store
            .create_admin_session(session.clone(), token.clone())
            .await
            .unwrap();
        sessions.push((session, token));
    }
    let at = now();
    let keep = sessions[0].0.id;
    let ended = h.store.revoke_admin_sessions(admin.id, Some(keep), at);
    assert_eq!(ended.await.unwrap(), 2);
    let state = |i: usize| {
        let token = sessions[i].1.clone();
        let store = h.store.clone();
        async move { store.find_admin_session(&token).await.unwrap().unwrap() }
    };
    assert_eq!(state(0).await.revoked_at, None);
    assert_eq!(state(1).await.revoked_at, Some(at));
    assert_eq!(state(2).await.revoked_at, Some(at));
    assert_eq!(state(3).await.revoked_at, None, "expired, not live");
    assert_eq!(state(4).await.revoked_at, None, "another admin's");
    let rest = h.store.revoke_admin_sessions(admin.id, None, at + hours(1));
    assert_eq!(rest.await.unwrap(), 1);
    assert_eq!(state(0).await.revoked_at, Some(at + hours(1)));
    let again = h.store.revoke_admin_sessions(admin.id, None, at + hours(2));
    assert_eq!(again.await.unwrap(), 0);
}

on_both_backends!(
    an_admin_reads_back_exactly,
    unknown_admins_are_not_found,
    a_taken_admin_email_is_a_conflict,
    admins_list_oldest_first,
    updating_an_admin_changes_only_the_given_fields,
    an_admin_session_is_found_by_its_token_hash,
    revoking_an_admin_session_twice_keeps_the_first_time,
    revoking_all_admin_sessions_but_one_keeps_it,
);
