//! Every vector of `docs/signing-vectors.json` (made by the Python reference in
//! `docs/signing.md`) must come out the same here, and verify.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use keel_core::integrity::{
    body_sha256, canonical_query, sign_v1, sign_v2, verify, CanonicalRequest, ServiceKeys,
    SignatureHeaders, SignedRequest, Version,
};
use serde_json::Value;

fn vectors() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/signing-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("docs/signing-vectors.json");
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["vectors"].as_array().unwrap().clone()
}

fn s<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{}: no {field}", v["name"]))
}

#[test]
fn there_are_vectors_of_both_versions() {
    let all = vectors();
    assert!(all.iter().filter(|v| v["version"] == "v2").count() >= 4);
    assert!(all.iter().filter(|v| v["version"] == "v1").count() >= 1);
}

#[test]
fn every_vector_canonicalises_and_signs_to_the_documented_values() {
    for v in vectors() {
        let name = s(&v, "name");
        let body = s(&v, "body").as_bytes();
        let secret = s(&v, "secret").as_bytes();
        assert_eq!(body_sha256(body), s(&v, "body_sha256"), "{name}");
        let signature = if v["version"] == "v1" {
            sign_v1(secret, body)
        } else {
            assert_eq!(
                canonical_query(s(&v, "query")),
                s(&v, "canonical_query"),
                "{name}"
            );
            let request = CanonicalRequest {
                method: s(&v, "method"),
                path: s(&v, "path"),
                query: s(&v, "query"),
                body,
                nonce: s(&v, "nonce"),
                timestamp: s(&v, "timestamp"),
            };
            assert_eq!(request.to_canonical_string(), s(&v, "canonical"), "{name}");
            sign_v2(secret, &request)
        };
        assert_eq!(signature, s(&v, "signature"), "{name}");
    }
}

#[test]
fn every_vector_verifies_against_its_key() {
    for v in vectors() {
        let name = s(&v, "name");
        let legacy = if v["version"] == "v1" {
            ":legacy_v1"
        } else {
            ""
        };
        let key_id = s(&v, "key_id");
        let id = if key_id.contains('@') {
            key_id.to_string()
        } else {
            format!("{key_id}@k")
        };
        let keys = ServiceKeys::parse(&format!("{id}:{}{legacy}", s(&v, "secret"))).unwrap();
        let headers = SignatureHeaders {
            key_id: Some(key_id),
            timestamp: Some(s(&v, "timestamp")),
            nonce: Some(s(&v, "nonce")),
            signature: Some(s(&v, "signature")),
        };
        let request = SignedRequest {
            method: s(&v, "method"),
            path: s(&v, "path"),
            query: s(&v, "query"),
            body: s(&v, "body").as_bytes(),
        };
        let now: i64 = s(&v, "timestamp").parse().unwrap();
        let verified =
            verify(&keys, &headers, &request, now, 120).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let expected = if legacy.is_empty() {
            Version::V2
        } else {
            Version::V1
        };
        assert_eq!(verified.version, expected, "{name}");
    }
}
