//! Shared by the webhook tests: a server configured for every provider, real-format
//! payloads signed the way each provider signs them, and polling helpers.

use std::future::Future;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use keel_server::Settings;
use keel_store::{InboxEvent, InboxStatus};
use serde_json::{json, Value};

use crate::helpers::{spawn_full, TestApp};

pub const STRIPE_SECRET: &str = "whsec_test_0123456789abcdef";
pub const LEMON_SECRET: &str = "lemon_test_0123456789abcdef";
pub const GOOGLE_AUDIENCE: &str = "https://keel.example.com/v1/webhooks/googleplay";
pub const GOOGLE_EMAIL: &str = "rtdn-push@kalei.iam.gserviceaccount.com";

pub const KALEI: &str = include_str!("../../../../examples/kalei.toml");
pub const IAMA: &str = include_str!("../../../../examples/iama.toml");

pub fn fixture(name: &str) -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/api/fixtures/webhooks");
    std::fs::read(dir.join(name)).unwrap()
}

/// Every provider configured; the worker polls often and retries quickly.
pub fn configure(s: &mut Settings) {
    let w = &mut s.webhooks;
    w.stripe_secrets = vec![STRIPE_SECRET.as_bytes().to_vec()];
    w.lemonsqueezy_secrets = vec![LEMON_SECRET.as_bytes().to_vec()];
    w.appstore_roots =
        keel_server::webhooks::appstore::parse_certificates(&fixture("root.pem")).unwrap();
    w.google_audience = Some(GOOGLE_AUDIENCE.into());
    w.google_email = Some(GOOGLE_EMAIL.into());
    w.google_jwks = Some(String::from_utf8(fixture("google_jwks.json")).unwrap());
    w.poll_interval = Duration::from_millis(50);
    w.retry_base = Duration::from_millis(50);
    w.max_attempts = 3;
}

pub async fn spawn_webhooks(manifest: &str) -> TestApp {
    spawn_full(manifest, configure).await
}

/// Polls `check` until it returns `Some`, for at most 15 s.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

impl TestApp {
    pub async fn inbox(&self) -> Vec<InboxEvent> {
        self.state
            .store()
            .list_inbox_events(None, None, 1000)
            .await
            .unwrap()
    }

    /// Waits until the inbox event `id` reaches a final state (applied or dead).
    pub async fn settled(&self, id: &str) -> InboxEvent {
        let id = id.parse().unwrap();
        until("the event to settle", || async {
            let e = self.state.store().get_inbox_event(id).await.unwrap();
            matches!(e.status, InboxStatus::Applied | InboxStatus::Dead).then_some(e)
        })
        .await
    }

    /// Posts raw bytes with headers; returns (status, body).
    pub async fn deliver(
        &self,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Delivers and expects a 200; returns the inbox id.
    pub async fn accepted(&self, path: &str, headers: &[(&str, String)], body: Vec<u8>) -> String {
        let (status, ack) = self.deliver(path, headers, body).await;
        assert_eq!(status, 200, "{ack}");
        ack["id"].as_str().unwrap().to_string()
    }

    pub async fn plan_of(&self, access: &str) -> (String, Value) {
        let e: Value = self
            .get_auth("/v1/entitlements", access)
            .await
            .json()
            .await
            .unwrap();
        (e["plan"].as_str().unwrap().to_string(), e)
    }

    pub async fn stripe(&self, event: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(event).unwrap();
        let t = chrono::Utc::now().timestamp();
        let sig = keel_core::webhooks::hmac_sig::stripe_header(STRIPE_SECRET.as_bytes(), t, &body);
        self.deliver("/v1/webhooks/stripe", &[("stripe-signature", sig)], body)
            .await
    }

    pub async fn lemon(&self, event: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(event).unwrap();
        let sig =
            keel_core::webhooks::hmac_sig::lemonsqueezy_header(LEMON_SECRET.as_bytes(), &body);
        self.deliver("/v1/webhooks/lemonsqueezy", &[("x-signature", sig)], body)
            .await
    }

    pub async fn appstore(&self, signed_payload: String) -> (u16, Value) {
        let body = serde_json::to_vec(&json!({"signedPayload": signed_payload})).unwrap();
        self.deliver("/v1/webhooks/appstore", &[], body).await
    }

    pub async fn googleplay(&self, token: &str, envelope: &Value) -> (u16, Value) {
        let body = serde_json::to_vec(envelope).unwrap();
        let auth = format!("Bearer {token}");
        self.deliver("/v1/webhooks/googleplay", &[("authorization", auth)], body)
            .await
    }
}

/// Signs `claims` as Apple does: ES256 with the leaf and its chain in `x5c`.
pub fn apple_jws(claims: &Value, leaf: &str, chain: &[&str]) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.x5c = Some(
        chain
            .iter()
            .map(|c| STANDARD.encode(fixture(&format!("{c}.der"))))
            .collect(),
    );
    let key = EncodingKey::from_ec_pem(&fixture(&format!("{leaf}.key"))).unwrap();
    encode(&header, claims, &key).unwrap()
}

/// A chain reaching the configured root.
pub fn apple_signed(claims: &Value) -> String {
    apple_jws(claims, "leaf", &["leaf", "intermediate"])
}

pub fn ms(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

/// An App Store Server Notification V2 as Apple documents it, with nested signed info.
pub struct AppleEvent<'a> {
    pub kind: &'a str,
    pub subtype: Option<&'a str>,
    pub account: &'a str,
    pub product: &'a str,
    pub signed: chrono::DateTime<chrono::Utc>,
    pub expires: chrono::DateTime<chrono::Utc>,
    pub grace_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl AppleEvent<'_> {
    pub fn claims(&self) -> Value {
        let tx = json!({
            "transactionId": format!("2000000{}", self.signed.timestamp_millis()),
            "originalTransactionId": "2000000000000001",
            "webOrderLineItemId": "2000000000000002",
            "bundleId": "com.kalei.app", "productId": self.product,
            "subscriptionGroupIdentifier": "21000001",
            "purchaseDate": ms(self.expires - chrono::Duration::days(30)),
            "originalPurchaseDate": ms(self.signed), "expiresDate": ms(self.expires),
            "quantity": 1, "type": "Auto-Renewable Subscription",
            "appAccountToken": self.account, "inAppOwnershipType": "PURCHASED",
            "signedDate": ms(self.signed), "environment": "Sandbox",
            "transactionReason": "PURCHASE", "storefront": "USA", "storefrontId": "143441",
            "price": 9990, "currency": "USD"
        });
        let mut renewal = json!({
            "originalTransactionId": "2000000000000001", "autoRenewProductId": self.product,
            "productId": self.product, "autoRenewStatus": 1, "signedDate": ms(self.signed),
            "environment": "Sandbox", "recentSubscriptionStartDate": ms(self.signed),
            "renewalDate": ms(self.expires), "appAccountToken": self.account
        });
        if let Some(g) = self.grace_until {
            renewal["gracePeriodExpiresDate"] = json!(ms(g));
            renewal["isInBillingRetryPeriod"] = json!(true);
        }
        let mut n = json!({
            "notificationType": self.kind, "notificationUUID": uuid::Uuid::new_v4().to_string(),
            "data": {"appAppleId": 1_234_567_890, "bundleId": "com.kalei.app", "bundleVersion": "42",
                     "environment": "Sandbox", "status": 1,
                     "signedTransactionInfo": apple_signed(&tx), "signedRenewalInfo": apple_signed(&renewal)},
            "version": "2.0", "signedDate": ms(self.signed)
        });
        if let Some(s) = self.subtype {
            n["subtype"] = json!(s);
        }
        n
    }

    pub fn signed_payload(&self) -> String {
        apple_signed(&self.claims())
    }
}

/// A Google-signed OIDC token for the push subscription.
pub fn google_token(audience: &str, key: &str, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iss": "https://accounts.google.com", "aud": audience, "iat": now,
        "exp": now + 3600, "email": GOOGLE_EMAIL, "email_verified": true,
        "sub": "110000000000000000001"});
    let key = EncodingKey::from_rsa_pem(&fixture(key)).unwrap();
    encode(&header, &claims, &key).unwrap()
}

/// A Pub/Sub push envelope around a subscription RTDN.
pub fn rtdn(kind: i64, token: &str, product: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    let notification = json!({"version": "1.0", "packageName": "com.kalei.app",
        "eventTimeMillis": ms(at).to_string(),
        "subscriptionNotification": {"version": "1.0", "notificationType": kind,
            "purchaseToken": token, "subscriptionId": product}});
    json!({"message": {"attributes": {}, "data": STANDARD.encode(notification.to_string()),
            "messageId": uuid::Uuid::new_v4().simple().to_string(),
            "publishTime": at.to_rfc3339()},
           "subscription": "projects/kalei/subscriptions/play-rtdn"})
}

/// Keeps `URL_SAFE_NO_PAD` in use for token surgery in tests.
pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The Keel user id's UUID, as apps pass it in `appAccountToken`.
pub fn account_token(user: &str) -> String {
    let id: keel_core::ids::UserId = user.parse().unwrap();
    id.as_uuid().hyphenated().to_string()
}
