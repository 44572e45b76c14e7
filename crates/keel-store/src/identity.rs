//! The identity context's storage: tenants, users, sessions, refresh tokens, API keys,
//! signing keys, wallet challenges, sign-in throttling and admin accounts.
//!
//! Lookups by a credential (an email at sign-in, a token hash, a key hash) are the only
//! unscoped reads: the credential is what establishes the tenant. Everything else takes
//! the caller's [`TenantScope`] first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{AdminId, ApiKeyId, ChallengeId, RefreshTokenId, SessionId, UserId};

use crate::{StoreResult, TenantScope};

pub use crate::identity_records::*;

/// Users, sessions, refresh tokens.
#[async_trait]
pub trait UserStore {
    /// Creates the tenant and the user in one transaction; `Conflict` if the email or
    /// wallet is taken.
    async fn create_user(&self, user: NewUser) -> StoreResult<UserRecord>;
    /// Sign-in lookup by normalised email (unscoped: the credential names the tenant).
    async fn find_user_by_email(&self, email: &str) -> StoreResult<Option<UserRecord>>;
    /// Sign-in lookup by wallet address (unscoped, as above).
    async fn find_user_by_wallet(&self, address: &str) -> StoreResult<Option<UserRecord>>;
    /// Any user by id, whatever the tenant: only for the product's own service principal,
    /// which acts for every tenant and learns the tenant from the user.
    async fn locate_user(&self, id: UserId) -> StoreResult<Option<UserRecord>>;
    /// A user of the scope's tenant.
    async fn get_user(&self, scope: &TenantScope, id: UserId) -> StoreResult<UserRecord>;
    /// Sets (or clears) the user's time zone at `now`, unless it was last changed after
    /// `not_changed_since`: then nothing changes and the answer is `false`.
    async fn set_timezone(
        &self,
        scope: &TenantScope,
        id: UserId,
        timezone: Option<&str>,
        now: chrono::DateTime<chrono::Utc>,
        not_changed_since: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<bool>;
    /// Replaces the password hash (change or transparent upgrade).
    async fn set_password_hash(
        &self,
        scope: &TenantScope,
        id: UserId,
        hash: &str,
    ) -> StoreResult<()>;

    /// Opens a session with its first refresh token, in one transaction.
    async fn create_session(
        &self,
        scope: &TenantScope,
        session: NewSession,
        token: NewRefreshToken,
    ) -> StoreResult<SessionRecord>;
    /// A session of the scope's tenant.
    async fn get_session(&self, scope: &TenantScope, id: SessionId) -> StoreResult<SessionRecord>;
    /// The user's sessions that are neither revoked nor expired, newest first.
    async fn list_sessions(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> StoreResult<Vec<SessionRecord>>;
    /// Ends one of the user's sessions; `NotFound` if it is not theirs. Idempotent.
    async fn revoke_session(
        &self,
        scope: &TenantScope,
        user: UserId,
        id: SessionId,
        reason: &str,
    ) -> StoreResult<()>;
    /// Ends every live session of the user except `keep`; returns how many.
    async fn revoke_user_sessions(
        &self,
        scope: &TenantScope,
        user: UserId,
        keep: Option<SessionId>,
        reason: &str,
    ) -> StoreResult<u64>;

    /// Refresh-token lookup by hash (unscoped: the token is the credential).
    async fn find_refresh_token(&self, hash: &[u8]) -> StoreResult<Option<RefreshTokenRecord>>;
    /// Atomically spends `parent` and stores `child` as its successor, bumping the
    /// session's `last_seen_at`; if `parent` was already spent, changes nothing and says
    /// when and by what. Exactly one of any number of concurrent callers gets `Rotated`.
    async fn rotate_refresh_token(
        &self,
        scope: &TenantScope,
        parent: RefreshTokenId,
        child: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<Rotation>;
}

/// API keys.
#[async_trait]
pub trait ApiKeyStore {
    /// Stores a new key.
    async fn create_api_key(
        &self,
        scope: &TenantScope,
        key: NewApiKey,
    ) -> StoreResult<ApiKeyRecord>;
    /// The user's keys, including revoked ones, newest first.
    async fn list_api_keys(
        &self,
        scope: &TenantScope,
        user: UserId,
    ) -> StoreResult<Vec<ApiKeyRecord>>;
    /// Revokes one of the user's keys; `NotFound` if it is not theirs. Idempotent.
    async fn revoke_api_key(
        &self,
        scope: &TenantScope,
        user: UserId,
        id: ApiKeyId,
    ) -> StoreResult<()>;
    /// Lookup by hash (unscoped: the key is the credential).
    async fn find_api_key(&self, hash: &[u8]) -> StoreResult<Option<ApiKeyRecord>>;
    /// Records use.
    async fn touch_api_key(
        &self,
        scope: &TenantScope,
        id: ApiKeyId,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
}

/// Process-wide identity material: signing keys, challenges, throttles, admins.
#[async_trait]
pub trait AuthStore {
    /// Every signing key, oldest first.
    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>>;
    /// Stores a key; `Conflict` if the kid exists.
    async fn insert_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()>;
    /// Marks a key as verify-only.
    async fn retire_signing_key(&self, kid: &str, at: DateTime<Utc>) -> StoreResult<()>;

    /// Stores a wallet challenge.
    async fn create_challenge(&self, challenge: ChallengeRecord) -> StoreResult<()>;
    /// Atomically consumes an unexpired, unused challenge; `None` if there is none.
    async fn consume_challenge(
        &self,
        id: ChallengeId,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<ChallengeRecord>>;

    /// Counts a failure under `key`; a window older than `window_secs` restarts at 1.
    async fn record_failure(
        &self,
        key: &str,
        now: DateTime<Utc>,
        window_secs: i64,
    ) -> StoreResult<FailureCount>;
    /// The current count under `key`, if any.
    async fn failure_count(&self, key: &str) -> StoreResult<Option<FailureCount>>;
    /// Forgets the failures under `key`.
    async fn clear_failures(&self, key: &str) -> StoreResult<()>;

    /// Creates an admin; `Conflict` if the email is taken.
    async fn create_admin(&self, admin: NewAdmin) -> StoreResult<AdminRecord>;
    /// Lookup by email.
    async fn find_admin_by_email(&self, email: &str) -> StoreResult<Option<AdminRecord>>;
    /// Lookup by id.
    async fn get_admin(&self, id: AdminId) -> StoreResult<AdminRecord>;
    /// Every admin, oldest first.
    async fn list_admins(&self) -> StoreResult<Vec<AdminRecord>>;
    /// Changes role, status, password hash or the must-change flag (each when `Some`).
    async fn update_admin(&self, id: AdminId, update: AdminUpdate) -> StoreResult<AdminRecord>;
    /// Number of admins.
    async fn count_admins(&self) -> StoreResult<i64>;
    /// Opens an admin session keyed by the hash of its opaque token.
    async fn create_admin_session(
        &self,
        session: AdminSessionRecord,
        token_hash: Vec<u8>,
    ) -> StoreResult<()>;
    /// Lookup by token hash.
    async fn find_admin_session(
        &self,
        token_hash: &[u8],
    ) -> StoreResult<Option<AdminSessionRecord>>;
    /// Ends one admin session.
    async fn revoke_admin_session(&self, id: SessionId, at: DateTime<Utc>) -> StoreResult<()>;
    /// Ends every session of an admin except `keep`.
    async fn revoke_admin_sessions(
        &self,
        admin: AdminId,
        keep: Option<SessionId>,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;
}
