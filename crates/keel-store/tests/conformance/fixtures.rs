//! Identity records with fresh ids, and a runner for callers racing each other.

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use keel_core::ids::{AdminId, ApiKeyId, RefreshTokenId, SessionId, TenantId, UserId};
use keel_store::{
    AdminSessionRecord, DynStore, NewAdmin, NewApiKey, NewRefreshToken, NewSession, NewUser,
    SessionRecord, TenantScope, UserRecord,
};
use tokio::sync::Barrier;
use uuid::Uuid;

/// How many concurrent callers the race tests start.
pub const CALLERS: usize = 32;

/// Now, at the precision the stores keep.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

/// A fresh 32-byte value standing in for a SHA-256 hash.
pub fn hash() -> Vec<u8> {
    [Uuid::now_v7().into_bytes(), Uuid::now_v7().into_bytes()].concat()
}

pub fn email() -> String {
    format!("{}@example.com", Uuid::now_v7().simple())
}

pub fn wallet() -> String {
    format!("{}{}", Uuid::now_v7().simple(), Uuid::now_v7().simple())
}

pub fn new_user() -> NewUser {
    NewUser {
        id: UserId::new(),
        tenant_id: TenantId::new(),
        tenant_name: "Personal".into(),
        email: Some(email()),
        password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
        wallet_address: None,
        role: "user".into(),
    }
}

pub fn new_wallet_user() -> NewUser {
    NewUser {
        email: None,
        password_hash: None,
        wallet_address: Some(wallet()),
        ..new_user()
    }
}

/// A password user in their own tenant, and that tenant's scope.
pub async fn user(store: &DynStore) -> (TenantScope, UserRecord) {
    let user = store.create_user(new_user()).await.unwrap();
    (TenantScope::new(user.tenant_id), user)
}

pub fn new_session(user: UserId, expires_at: DateTime<Utc>) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id: user,
        device_name: Some("laptop".into()),
        user_agent: Some("curl/8.5".into()),
        ip: Some("203.0.113.7".into()),
        expires_at,
    }
}

pub fn new_token(expires_at: DateTime<Utc>) -> NewRefreshToken {
    NewRefreshToken {
        id: RefreshTokenId::new(),
        token_hash: hash(),
        expires_at,
    }
}

/// A live session (a day long) with its first refresh token.
pub async fn session(
    store: &DynStore,
    scope: &TenantScope,
    user: UserId,
) -> (SessionRecord, NewRefreshToken) {
    session_until(store, scope, user, now() + hours(24)).await
}

pub async fn session_until(
    store: &DynStore,
    scope: &TenantScope,
    user: UserId,
    expires_at: DateTime<Utc>,
) -> (SessionRecord, NewRefreshToken) {
    let token = new_token(expires_at);
    let session = store
        .create_session(scope, new_session(user, expires_at), token.clone())
        .await
        .unwrap();
    (session, token)
}

pub fn new_api_key(user: UserId) -> NewApiKey {
    NewApiKey {
        id: ApiKeyId::new(),
        user_id: user,
        name: "ci".into(),
        prefix: "keel_live_AbC1".into(),
        key_hash: hash(),
        scopes: vec!["jobs:read".into(), "jobs:write".into()],
        expires_at: Some(now() + hours(24 * 30)),
    }
}

pub fn new_admin() -> NewAdmin {
    NewAdmin {
        id: AdminId::new(),
        email: email(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$YWRtaW4".into(),
        role: "ENGINEER".into(),
        must_change_password: true,
    }
}

pub fn admin_session(admin: AdminId, expires_at: DateTime<Utc>) -> AdminSessionRecord {
    AdminSessionRecord {
        id: SessionId::new(),
        admin_id: admin,
        expires_at,
        revoked_at: None,
    }
}

/// Runs `CALLERS` tasks that are released together; their results in spawn order.
pub async fn race<T, F, Fut>(call: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    race_n(CALLERS, call).await
}

/// Runs `callers` tasks that are released together; their results in spawn order.
pub async fn race_n<T, F, Fut>(callers: usize, call: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let start = Arc::new(Barrier::new(callers));
    let tasks: Vec<_> = (0..callers)
        .map(|i| {
            let start = start.clone();
            let call = call(i);
            tokio::spawn(async move {
                start.wait().await;
                call.await
            })
        })
        .collect();
    let mut results = Vec::with_capacity(callers);
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}
