//! The identity context's records (see `identity.rs` for the traits).

use chrono::{DateTime, Utc};
use keel_core::ids::{AdminId, ApiKeyId, ChallengeId, RefreshTokenId, SessionId, TenantId, UserId};
use serde::Serialize;

/// A product user to create, together with their personal tenant (or in an existing
/// tenant: the tenant row is made only when `tenant_id` names none yet).
#[derive(Clone, Debug)]
pub struct NewUser {
    /// The new user's id.
    pub id: UserId,
    /// The personal tenant made for them, or the existing tenant they join.
    pub tenant_id: TenantId,
    /// Display name of that tenant (when it is made).
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
    /// The user's own IANA time zone for calendar windows, if set.
    pub timezone: Option<String>,
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
