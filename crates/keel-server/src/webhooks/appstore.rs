//! App Store Server Notifications V2: the `signedPayload` is a JWS (ES256) whose `x5c`
//! header carries the signing certificate and its intermediates. The chain is verified
//! up to a configured trust anchor (Apple Root CA - G3 in production) with `webpki`, the
//! signature with the leaf's key, then the nested `signedTransactionInfo` and
//! `signedRenewalInfo` the same way.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, SignatureVerificationAlgorithm,
    UnixTime,
};
use serde_json::{json, Value};
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};

/// Why a JWS was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwsError {
    /// Not three base64url parts, or a header or payload that is not JSON.
    #[error("malformed JWS: {0}")]
    Malformed(&'static str),
    /// The chain does not reach a trusted root (or a certificate is expired or invalid).
    #[error("the certificate chain does not reach a trusted root: {0}")]
    Untrusted(String),
    /// The signature does not verify with the leaf certificate's key.
    #[error("the JWS signature does not verify")]
    BadSignature,
}

impl JwsError {
    /// The stable API error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed_payload",
            Self::Untrusted(_) => "untrusted_certificate",
            Self::BadSignature => "invalid_signature",
        }
    }
}

/// Reads PEM `CERTIFICATE` blocks, or one DER certificate, into DER.
pub fn parse_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    if bytes.starts_with(b"-----") || bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(bytes).collect();
        let certs = certs.map_err(|e| format!("PEM certificates ({e})"))?;
        if certs.is_empty() {
            return Err("at least one PEM CERTIFICATE block".into());
        }
        return Ok(certs.into_iter().map(|c| c.to_vec()).collect());
    }
    let der = CertificateDer::from(bytes.to_vec());
    webpki::anchor_from_trusted_cert(&der).map_err(|e| format!("a DER certificate ({e:?})"))?;
    Ok(vec![bytes.to_vec()])
}

/// ES256 as JWS writes it: `r || s`, 64 bytes (X.509 signatures use DER instead).
#[derive(Debug)]
struct Es256Jws;

impl SignatureVerificationAlgorithm for Es256Jws {
    fn verify_signature(&self, key: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, key)
            .verify(msg, sig)
            .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P256
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA256
    }
}

/// Apple's signing certificates are used for signing only; any extended key usage passes.
struct AnyUsage;

impl ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

/// Verifies a JWS signed by an `x5c` chain reaching one of `roots` (DER) at `now`; its payload.
pub fn verify_jws(token: &str, roots: &[Vec<u8>], now: UnixTime) -> Result<Value, JwsError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed("expected three parts"));
    };
    let b64 = |t: &str| {
        URL_SAFE_NO_PAD
            .decode(t)
            .map_err(|_| JwsError::Malformed("not base64url"))
    };
    let header: Value =
        serde_json::from_slice(&b64(h)?).map_err(|_| JwsError::Malformed("header is not JSON"))?;
    if header.get("alg").and_then(Value::as_str) != Some("ES256") {
        return Err(JwsError::Malformed("alg must be ES256"));
    }
    let chain: Vec<CertificateDer<'static>> = header
        .get("x5c")
        .and_then(Value::as_array)
        .ok_or(JwsError::Malformed("missing x5c"))?
        .iter()
        .map(|c| {
            c.as_str()
                .and_then(|c| STANDARD.decode(c).ok())
                .map(CertificateDer::from)
                .ok_or(JwsError::Malformed("x5c entries must be base64 DER"))
        })
        .collect::<Result<_, _>>()?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or(JwsError::Malformed("empty x5c"))?;
    let root_ders: Vec<CertificateDer<'_>> = roots
        .iter()
        .map(|r| CertificateDer::from(r.as_slice()))
        .collect();
    let anchors = root_ders
        .iter()
        .map(|r| webpki::anchor_from_trusted_cert(r).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| JwsError::Untrusted(format!("bad trust anchor: {e:?}")))?;
    if anchors.is_empty() {
        return Err(JwsError::Untrusted("no trusted root is configured".into()));
    }
    let cert = EndEntityCert::try_from(leaf)
        .map_err(|e| JwsError::Untrusted(format!("leaf certificate: {e:?}")))?;
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        now,
        AnyUsage,
        None,
        None,
    )
    .map_err(|e| JwsError::Untrusted(format!("{e:?}")))?;
    let signature = b64(s)?;
    let signing_input = &token[..h.len() + 1 + p.len()];
    cert.verify_signature(&Es256Jws, signing_input.as_bytes(), &signature)
        .map_err(|_| JwsError::BadSignature)?;
    serde_json::from_slice(&b64(p)?).map_err(|_| JwsError::Malformed("payload is not JSON"))
}

/// Verifies a notification body `{"signedPayload": "<JWS>"}` and its nested signed
/// transaction and renewal info; returns `{"notification", "transaction", "renewal"}`.
pub fn verify_notification(
    body: &[u8],
    roots: &[Vec<u8>],
    now: UnixTime,
) -> Result<Value, JwsError> {
    let envelope: Value =
        serde_json::from_slice(body).map_err(|_| JwsError::Malformed("body is not JSON"))?;
    let signed = envelope
        .get("signedPayload")
        .and_then(Value::as_str)
        .ok_or(JwsError::Malformed("missing signedPayload"))?;
    let mut notification = verify_jws(signed, roots, now)?;
    let mut nested = |key: &str| -> Result<Value, JwsError> {
        let data = notification.get_mut("data").and_then(Value::as_object_mut);
        match data.and_then(|d| d.remove(key)) {
            Some(Value::String(jws)) => verify_jws(&jws, roots, now),
            Some(_) => Err(JwsError::Malformed(
                "nested signed info must be a JWS string",
            )),
            None => Ok(Value::Null),
        }
    };
    let transaction = nested("signedTransactionInfo")?;
    let renewal = nested("signedRenewalInfo")?;
    Ok(json!({"notification": notification, "transaction": transaction, "renewal": renewal}))
}
