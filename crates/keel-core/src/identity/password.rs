//! The password policy: a minimum length (12 by default), a maximum (so hashing cost is
//! bounded), and a refusal of the most common passwords and of the account's own email.

/// Passwords refused whatever their length: the most common long-enough ones in breach
/// corpora, compared case-insensitively.
const COMMON: &[&str] = &[
    "123456789012",
    "1234567890123",
    "12345678901234",
    "123456123456",
    "111111111111",
    "000000000000",
    "password1234",
    "password12345",
    "password123456",
    "passwordpassword",
    "qwertyuiopas",
    "qwerty123456",
    "qwertyuiop123",
    "1q2w3e4r5t6y",
    "1qaz2wsx3edc",
    "iloveyou1234",
    "letmein12345",
    "welcome12345",
    "administrator",
    "adminadmin12",
    "admin1234567",
    "changeme1234",
    "football1234",
    "baseball1234",
    "superman1234",
    "sunshine1234",
    "princess1234",
    "monkey123456",
    "dragon123456",
    "master123456",
    "abc123456789",
    "abcdefghijkl",
    "abcd1234abcd",
    "aaaaaaaaaaaa",
    "zxcvbnm12345",
    "trustno11234",
    "starwars1234",
    "whatever1234",
    "passw0rd1234",
    "p@ssw0rd1234",
    "p@ssword1234",
    "computer1234",
    "internet1234",
    "michael12345",
    "jennifer1234",
    "correcthorsebatterystaple",
    "qwertyqwerty",
    "asdfghjkl123",
    "asdfasdfasdf",
    "secret123456",
    "mypassword12",
    "mypassword123",
    "password!234",
    "Password1234!",
    "hello1234567",
    "freedom12345",
    "shadow123456",
    "killer123456",
    "pokemon12345",
    "1234qwerasdf",
    "qazwsxedcrfv",
    "987654321098",
    "121212121212",
    "123123123123",
];

/// How passwords are judged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters accepted.
    pub min_length: usize,
    /// Most characters accepted (bounds hashing work).
    pub max_length: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 12,
            max_length: 256,
        }
    }
}

/// Why a password was refused; `code` is stable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyViolation {
    /// Stable code: `password_too_short`, `password_too_long`, `password_too_common`.
    pub code: &'static str,
    /// For humans.
    pub message: String,
}

impl PasswordPolicy {
    /// Accepts or refuses `password` for an account with `email_local` (may be empty).
    pub fn check(&self, password: &str, email_local: &str) -> Result<(), PolicyViolation> {
        let chars = password.chars().count();
        if chars < self.min_length {
            return Err(PolicyViolation {
                code: "password_too_short",
                message: format!(
                    "the password must have at least {} characters",
                    self.min_length
                ),
            });
        }
        if chars > self.max_length {
            return Err(PolicyViolation {
                code: "password_too_long",
                message: format!(
                    "the password must have at most {} characters",
                    self.max_length
                ),
            });
        }
        let lower = password.to_lowercase();
        let same_as_email = !email_local.is_empty() && lower == email_local.to_lowercase();
        let first = password.chars().next();
        let single_char = password.chars().all(|c| Some(c) == first);
        if same_as_email || single_char || COMMON.iter().any(|c| c.to_lowercase() == lower) {
            return Err(PolicyViolation {
                code: "password_too_common",
                message: "this password is too common or too easy to guess".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_policy_refuses_short_long_and_common_passwords() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check("short", "").unwrap_err().code, "password_too_short");
        assert_eq!(
            p.check(&"x1".repeat(200), "").unwrap_err().code,
            "password_too_long"
        );
        assert_eq!(
            p.check("Password1234", "").unwrap_err().code,
            "password_too_common"
        );
        assert_eq!(
            p.check("zzzzzzzzzzzzzz", "").unwrap_err().code,
            "password_too_common"
        );
        assert_eq!(
            p.check("alice.smith.99", "Alice.Smith.99")
                .unwrap_err()
                .code,
            "password_too_common"
        );
        assert!(p.check("tangerine-orbit-42", "alice").is_ok());
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let p = PasswordPolicy::default();
        assert!(p.check("ééééééééééé", "").is_err()); // 11 chars, 22 bytes
        assert!(p.check("ééééééééééééa", "").is_ok());
    }
}
