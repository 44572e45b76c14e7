//! The identity context's storage: tenants, users, sessions, refresh tokens, API keys,
//! signing keys, wallet challenges, sign-in throttling and admin accounts.
//!
//! Lookups by a credential (an email at sign-in, a token hash, a key hash) are the only
//! unscoped reads: the credential is what establishes the tenant. Everything else takes
//! the caller's [`TenantScope`] first.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use keel_core::ids::{AdminId, ApiKeyId, ChallengeId, RefreshTokenId, SessionId, TenantId, UserId};
use serde::Serialize;

use crate::{StoreResult, TenantScope};

/// A product user to create, together with their personal tenant.
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The new user's id.
    pub id: UserId,
    /// The personal tenant made for them.
    pub tenant_id: TenantId,
    /// Display name of that tenant.
    pub tenant_name: String,
    /// Normalised email (password users).
    pub email: Option<String>,
    /// PHC-format Argon2id hash (password users).
    pub password_hash: Option<String>,
    /// Lower-case hex public key (wallet users).
    pub wallet_address: Option<String>,
    /// `user` or `admin` within the tenant.
    pub role: String,
}

/// A stored product user.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserRecord {
    /// Id.
    pub id: UserId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Normalised email.
    pub email: Option<String>,
    /// PHC hash; never serialised.
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// Wallet public key.
    pub wallet_address: Option<String>,
    /// `user` or `admin`.
    pub role: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A session to open, with its first refresh token.
#[derive(Clone, Debug)]
pub struct NewSession {
    /// Id.
    pub id: SessionId,
    /// Whose.
    pub user_id: UserId,
    /// Device name the client gave.
    pub device_name: Option<String>,
    /// `User-Agent`.
    pub user_agent: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// When it stops being refreshable at the latest.
    pub expires_at: DateTime<Utc>,
}

/// A stored session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionRecord {
    /// Id.
    pub id: SessionId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Whose.
    pub user_id: UserId,
    /// Device name.
    pub device_name: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
    /// IP.
    pub ip: Option<String>,
    /// Opened.
    pub created_at: DateTime<Utc>,
    /// Last refresh or use.
    pub last_seen_at: DateTime<Utc>,
    /// Hard expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was ended, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why: `logout`, `logout_all`, `refresh_reuse`, `password_change`, `revoked`.
    pub revoked_reason: Option<String>,
}

/// A refresh token to store (only its hash).
#[derive(Clone, Debug)]
pub struct NewRefreshToken {
    /// Id.
    pub id: RefreshTokenId,
    /// SHA-256 of the opaque token.
    pub token_hash: Vec<u8>,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
}

/// A stored refresh token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// Id.
    pub id: RefreshTokenId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Its session.
    pub session_id: SessionId,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// When it was spent, if it was.
    pub used_at: Option<DateTime<Utc>>,
    /// The token that replaced it.
    pub successor_id: Option<RefreshTokenId>,
}

/// What happened when a refresh token was spent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// It was unspent; it is now spent and the successor is stored.
    Rotated,
    /// It had already been spent at this time, replaced by this successor.
    AlreadyUsed {
        /// When it was spent.
        used_at: DateTime<Utc>,
        /// Its successor.
        successor_id: Option<RefreshTokenId>,
    },
}

/// An API key to store (only its hash and display prefix).
#[derive(Clone, Debug)]
pub struct NewApiKey {
    /// Id.
    pub id: ApiKeyId,
    /// Owner.
    pub user_id: UserId,
    /// Human name.
    pub name: String,
    /// Display prefix, e.g. `keel_live_AbC1`.
    pub prefix: String,
    /// SHA-256 of the full key.
    pub key_hash: Vec<u8>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Optional expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A stored API key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeyRecord {
    /// Id.
    pub id: ApiKeyId,
    /// Tenant.
    pub tenant_id: TenantId,
    /// Owner.
    pub user_id: UserId,
    /// Name.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last authenticated use (updated at most about once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A JWT signing key. The private half never leaves the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// The `kid`.
    pub kid: String,
    /// `EdDSA`.
    pub alg: String,
    /// PKCS#8 DER of the private key.
    pub private_der: Vec<u8>,
    /// Raw public key bytes.
    pub public_raw: Vec<u8>,
    /// Created; the newest active key signs.
    pub created_at: DateTime<Utc>,
    /// After this, it only verifies (until dropped from the JWKS).
    pub retired_at: Option<DateTime<Utc>>,
}

/// A wallet sign-in challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// Id.
    pub id: ChallengeId,
    /// The wallet it was issued to (lower-case hex).
    pub address: String,
    /// The exact message to sign.
    pub message: String,
    /// Expiry.
    pub expires_at: DateTime<Utc>,
    /// Set once consumed.
    pub used_at: Option<DateTime<Utc>>,
}

/// Failed sign-in attempts counted under one key (`acct:<email>` or `ip:<addr>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailureCount {
    /// Failures in the current window.
    pub failures: i64,
    /// Start of the window.
    pub window_start: DateTime<Utc>,
    /// The last failure.
    pub last_failure: DateTime<Utc>,
}

/// An admin account to create.
#[derive(Clone, Debug)]
pub struct NewAdmin {
    /// Id.
    pub id: AdminId,
    /// Normalised email.
    pub email: String,
    /// PHC hash.
    pub password_hash: String,
    /// `SUPER_ADMIN`, `ENGINEER` or `SUPPORT`.
    pub role: String,
    /// Must change password at next sign-in.
    pub must_change_password: bool,
}

/// A stored admin account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AdminRecord {
    /// Id.
    pub id: AdminId,
    /// Email.
    pub email: String,
    /// PHC hash; never serialised.
    #[serde(skip)]
    pub password_hash: String,
    /// Role.
    pub role: String,
    /// `active` or `disabled`.
    pub status: String,
    /// Must change password before doing anything else.
    pub must_change_password: bool,
    /// Created.
    pub created_at: DateTime<Utc>,
}

/// A stored admin session (opaque bearer token, hashed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminSessionRecord {
    /// Id.
    pub id: SessionId,
    /// Whose.
    pub admin_id: AdminId,
    /// Expiry (8 hours from sign-in).
    pub expires_at: DateTime<Utc>,
    /// Set on logout or account change.
    pub revoked_at: Option<DateTime<Utc>>,
}

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

/// Changes to an admin account; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct AdminUpdate {
    /// New role.
    pub role: Option<String>,
    /// New status.
    pub status: Option<String>,
    /// New password hash.
    pub password_hash: Option<String>,
    /// New must-change flag.
    pub must_change_password: Option<bool>,
}
