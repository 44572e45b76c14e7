//! Argon2id hashing off the async threads, on a fixed pool of worker threads, so a login
//! storm queues instead of exhausting memory: each hash holds 19 MiB, and a fixed set of
//! threads keeps the allocator from retaining a 19 MiB block per blocking-pool thread.

use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::rngs::OsRng;
use tokio::sync::{mpsc, oneshot, OnceCell};

/// OWASP's minimum for Argon2id: 19 MiB, 2 iterations, 1 lane.
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Iterations.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const LANES: u32 = 1;

type Job = Box<dyn FnOnce() + Send>;

/// Hashes and verifies passwords on a fixed pool of threads.
#[derive(Clone)]
pub struct Passwords {
    jobs: mpsc::Sender<Job>,
    params: Params,
    dummy: Arc<OnceCell<String>>,
}

/// The result of a verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The password matched.
    pub ok: bool,
    /// The stored hash uses weaker parameters than today's; rehash it.
    pub needs_rehash: bool,
}

impl Passwords {
    /// At most `concurrency` hashes run at once; the rest wait in a queue.
    pub fn new(concurrency: usize) -> Self {
        let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap_or_default();
        let (jobs, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..concurrency.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("keel-argon2-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(mut rx) => rx.blocking_recv(),
                        Err(_) => None,
                    };
                    match job {
                        Some(job) => job(),
                        None => return,
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            jobs,
            params,
            dummy: Arc::new(OnceCell::new()),
        }
    }

    /// Runs `f` on the hashing pool.
    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| anyhow::anyhow!("password hashing pool stopped"))?;
        Ok(rx.await?)
    }

    fn argon(params: Params) -> Argon2<'static> {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
    }

    /// A PHC string (algorithm, parameters and salt stored with the hash).
    pub async fn hash(&self, password: &str) -> anyhow::Result<String> {
        let params = self.params.clone();
        let password = password.to_owned();
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            Self::argon(params)
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| anyhow::anyhow!("hashing failed: {e}"))
        })
        .await?
    }

    /// Verifies against a stored PHC hash. `None` (no such account) costs the same as a
    /// real verification, so timing does not reveal which emails exist.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> anyhow::Result<Verified> {
        let (stored, real) = match stored {
            Some(s) => (s.to_owned(), true),
            None => (self.dummy_hash().await?, false),
        };
        let password = password.to_owned();
        let want = self.params.clone();
        let result = self
            .run(move || {
                let Ok(parsed) = PasswordHash::new(&stored) else {
                    return Verified {
                        ok: false,
                        needs_rehash: false,
                    };
                };
                let ok = Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok();
                let needs_rehash = ok && weaker_than(&parsed, &want);
                Verified { ok, needs_rehash }
            })
            .await?;
        Ok(Verified {
            ok: result.ok && real,
            needs_rehash: result.needs_rehash && real,
        })
    }

    async fn dummy_hash(&self) -> anyhow::Result<String> {
        self.dummy
            .get_or_try_init(|| self.hash("keel-dummy-password-for-timing"))
            .await
            .cloned()
    }
}

/// True when the stored hash is not Argon2id or uses less memory, time or lanes.
fn weaker_than(hash: &PasswordHash<'_>, want: &Params) -> bool {
    if hash.algorithm.as_str() != "argon2id" {
        return true;
    }
    let Ok(have) = Params::try_from(hash) else {
        return true;
    };
    have.m_cost() < want.m_cost() || have.t_cost() < want.t_cost() || have.p_cost() < want.p_cost()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let p = Passwords::new(2);
        let h = p.hash("tangerine-orbit-42").await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert_eq!(
            p.verify("tangerine-orbit-42", Some(&h)).await.unwrap(),
            Verified {
                ok: true,
                needs_rehash: false
            }
        );
        assert!(!p.verify("tangerine-orbit-43", Some(&h)).await.unwrap().ok);
        assert!(!p.verify("tangerine-orbit-42", None).await.unwrap().ok);
        assert!(!p.verify("x", Some("not a phc string")).await.unwrap().ok);
    }

    #[tokio::test]
    async fn weaker_hashes_are_flagged_for_upgrade() {
        let weak = Params::new(8 * 1024, 1, 1, None).unwrap();
        let salt = SaltString::generate(&mut OsRng);
        let h = Passwords::argon(weak)
            .hash_password(b"tangerine-orbit-42", &salt)
            .unwrap()
            .to_string();
        let v = Passwords::new(1)
            .verify("tangerine-orbit-42", Some(&h))
            .await
            .unwrap();
        assert_eq!(
            v,
            Verified {
                ok: true,
                needs_rehash: true
            }
        );
    }
}
