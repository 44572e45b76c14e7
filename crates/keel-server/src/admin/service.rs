//! Admin rules: bootstrap, sign-in, password changes, account management.

use axum::http::StatusCode;
use chrono::Utc;
use keel_core::identity::{hash_secret, random_token, Email, PasswordPolicy};
use keel_core::ids::{AdminId, SessionId};
use keel_store::{AdminRecord, AdminSessionRecord, AdminUpdate, DynStore, NewAdmin, StoreError};
use serde_json::json;

use crate::identity::passwords::Passwords;
use crate::identity::{system_tenant, throttle, Identity};
use crate::ApiError;

/// Admin sessions last 8 hours.
pub const ADMIN_SESSION_HOURS: i64 = 8;

/// Why bootstrap refused.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Admins exist already; the first one is made only once.
    #[error("an admin account already exists; bootstrap creates only the first SUPER_ADMIN")]
    AlreadyBootstrapped,
    /// Bad email or password.
    #[error("{0}")]
    Invalid(String),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing failure.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

/// Creates the first `SUPER_ADMIN`; only the command line calls this.
pub async fn bootstrap(
    store: &DynStore,
    email: &str,
    password: &str,
) -> Result<AdminRecord, BootstrapError> {
    if store.count_admins().await? > 0 {
        return Err(BootstrapError::AlreadyBootstrapped);
    }
    let email = Email::parse(email).map_err(|e| BootstrapError::Invalid(e.to_string()))?;
    PasswordPolicy::default()
        .check(password, email.local_part())
        .map_err(|v| BootstrapError::Invalid(v.message))?;
    let hash = Passwords::new(1).hash(password).await?;
    let admin = store
        .create_admin(NewAdmin {
            id: AdminId::new(),
            email: email.as_str().to_string(),
            password_hash: hash,
            role: "SUPER_ADMIN".into(),
            must_change_password: false,
        })
        .await?;
    let event = keel_store::NewAuditEvent {
        actor: "cli".into(),
        action: "admin.bootstrap".into(),
        target: Some(admin.id.to_string()),
        request_id: None,
        data: json!({"role": "SUPER_ADMIN"}),
    };
    store
        .append_audit(&keel_store::TenantScope::new(system_tenant()), event)
        .await?;
    Ok(admin)
}

/// An admin sign-in answer.
pub struct AdminLogin {
    /// The opaque bearer token (`kadm_…`).
    pub token: String,
    /// The session.
    pub session: SessionId,
    /// The account.
    pub admin: AdminRecord,
}

impl Identity {
    /// Admin email + password sign-in, throttled like product sign-in.
    pub async fn admin_login(
        &self,
        email: &str,
        password: &str,
        ip: Option<&str>,
    ) -> Result<AdminLogin, ApiError> {
        let normalised = Email::parse(email)
            .map(|e| e.as_str().to_string())
            .unwrap_or_else(|_| email.trim().to_string());
        let keys = throttle::keys(&format!("admin:{normalised}"), ip);
        self.check_throttle(&keys).await?;
        let admin = self.store.find_admin_by_email(&normalised).await?;
        let verified = self
            .passwords
            .verify(password, admin.as_ref().map(|a| a.password_hash.as_str()))
            .await
            .map_err(ApiError::internal)?;
        let Some(admin) = admin.filter(|a| verified.ok && a.status == "active") else {
            self.record_failure(&keys).await?;
            self.audit(
                system_tenant(),
                "anonymous",
                "admin.login_failed",
                None,
                json!({"ip": ip}),
            )
            .await;
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "wrong email or password",
            ));
        };
        self.store.clear_failures(&keys[0].0).await?;
        let token = random_token("kadm");
        let session = AdminSessionRecord {
            id: SessionId::new(),
            admin_id: admin.id,
            expires_at: Utc::now() + chrono::Duration::hours(ADMIN_SESSION_HOURS),
            revoked_at: None,
        };
        self.store
            .create_admin_session(session.clone(), hash_secret(&token))
            .await?;
        self.audit(
            system_tenant(),
            &admin.id.to_string(),
            "admin.login",
            Some(session.id.to_string()),
            json!({"ip": ip}),
        )
        .await;
        Ok(AdminLogin {
            token,
            session: session.id,
            admin,
        })
    }

    /// Changes an admin's own password; other admin sessions end.
    pub async fn admin_change_password(
        &self,
        admin: &AdminRecord,
        session: SessionId,
        current: &str,
        new: &str,
    ) -> Result<(), ApiError> {
        let verified = self
            .passwords
            .verify(current, Some(&admin.password_hash))
            .await
            .map_err(ApiError::internal)?;
        if !verified.ok {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                "the current password is wrong",
            ));
        }
        let local = admin.email.rsplit_once('@').map_or("", |(l, _)| l);
        self.config.policy.check(new, local).map_err(|v| {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, v.code, v.message)
                .with_details(json!({"field": "new_password"}))
        })?;
        let hash = self.passwords.hash(new).await.map_err(ApiError::internal)?;
        let update = AdminUpdate {
            password_hash: Some(hash),
            must_change_password: Some(false),
            ..Default::default()
        };
        self.store.update_admin(admin.id, update).await?;
        self.store
            .revoke_admin_sessions(admin.id, Some(session), Utc::now())
            .await?;
        self.audit(
            system_tenant(),
            &admin.id.to_string(),
            "admin.password_changed",
            Some(admin.id.to_string()),
            json!({}),
        )
        .await;
        Ok(())
    }

    /// A SUPER_ADMIN creates an ENGINEER or SUPPORT account with a temporary password.
    pub async fn admin_create(
        &self,
        actor: &AdminRecord,
        email: &str,
        role: &str,
    ) -> Result<(AdminRecord, String), ApiError> {
        if !matches!(role, "ENGINEER" | "SUPPORT") {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_role",
                "role must be ENGINEER or SUPPORT",
            )
            .with_details(json!({"field": "role"})));
        }
        let email = Email::parse(email).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_email",
                e.to_string(),
            )
            .with_details(json!({"field": "email"}))
        })?;
        let temporary = random_token("tmp");
        let hash = self
            .passwords
            .hash(&temporary)
            .await
            .map_err(ApiError::internal)?;
        let new = NewAdmin {
            id: AdminId::new(),
            email: email.as_str().to_string(),
            password_hash: hash,
            role: role.to_string(),
            must_change_password: true,
        };
        let admin = self.store.create_admin(new).await.map_err(|e| match e {
            StoreError::Conflict(_) => ApiError::new(
                StatusCode::CONFLICT,
                "email_taken",
                "an admin with this email exists",
            ),
            other => other.into(),
        })?;
        self.audit(
            system_tenant(),
            &actor.id.to_string(),
            "admin.account_created",
            Some(admin.id.to_string()),
            json!({"role": role}),
        )
        .await;
        Ok((admin, temporary))
    }

    /// A SUPER_ADMIN changes another account's role or status.
    pub async fn admin_update(
        &self,
        actor: &AdminRecord,
        id: AdminId,
        role: Option<String>,
        status: Option<String>,
    ) -> Result<AdminRecord, ApiError> {
        if id == actor.id {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "cannot_change_self",
                "use another SUPER_ADMIN to change your own account",
            ));
        }
        if role
            .as_deref()
            .is_some_and(|r| !matches!(r, "ENGINEER" | "SUPPORT"))
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_role",
                "role must be ENGINEER or SUPPORT",
            )
            .with_details(json!({"field": "role"})));
        }
        if status
            .as_deref()
            .is_some_and(|s| !matches!(s, "active" | "disabled"))
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_status",
                "status must be active or disabled",
            )
            .with_details(json!({"field": "status"})));
        }
        let disabling = status.as_deref() == Some("disabled");
        let update = AdminUpdate {
            role: role.clone(),
            status: status.clone(),
            ..Default::default()
        };
        let admin = self.store.update_admin(id, update).await?;
        if disabling {
            self.store
                .revoke_admin_sessions(id, None, Utc::now())
                .await?;
        }
        self.audit(
            system_tenant(),
            &actor.id.to_string(),
            "admin.account_updated",
            Some(id.to_string()),
            json!({"role": role, "status": status}),
        )
        .await;
        Ok(admin)
    }

    /// A SUPER_ADMIN forces a password reset: a temporary password, every session ended.
    pub async fn admin_force_reset(
        &self,
        actor: &AdminRecord,
        id: AdminId,
    ) -> Result<String, ApiError> {
        let temporary = random_token("tmp");
        let hash = self
            .passwords
            .hash(&temporary)
            .await
            .map_err(ApiError::internal)?;
        let update = AdminUpdate {
            password_hash: Some(hash),
            must_change_password: Some(true),
            ..Default::default()
        };
        self.store.update_admin(id, update).await?;
        self.store
            .revoke_admin_sessions(id, None, Utc::now())
            .await?;
        self.audit(
            system_tenant(),
            &actor.id.to_string(),
            "admin.password_reset_forced",
            Some(id.to_string()),
            json!({}),
        )
        .await;
        Ok(temporary)
    }
}
