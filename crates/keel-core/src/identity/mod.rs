//! Pure identity rules: email normalisation, the password policy, opaque token formats.

pub mod email;
pub mod password;
pub mod secret;
pub mod throttle;

pub use email::{Email, EmailError};
pub use password::{PasswordPolicy, PolicyViolation};
pub use secret::{api_key, equal_ct, hash_secret, looks_like_api_key, random_token, ApiKeySecret};
pub use throttle::ThrottlePolicy;
