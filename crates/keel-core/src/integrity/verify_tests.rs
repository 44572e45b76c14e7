#![allow(clippy::unwrap_used, clippy::panic)]
use super::*;
use crate::integrity::signing::{sign_v1, sign_v2};

const NOW: i64 = 1_700_000_000;
const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
const C: &str = "cccccccccccccccccccccccccccccccc";
const NONCE: &str = "nonce_0123456789-abc";

fn keys() -> ServiceKeys {
    ServiceKeys::parse(&format!(
        "worker@new:{A}, worker@old:{B}:legacy_v1, worker@gone:{C}:revoked, batch:{A}"
    ))
    .unwrap()
}

const REQ: SignedRequest<'static> = SignedRequest {
    method: "POST",
    path: "/v1/service/reservations",
    query: "b=2&a=1",
    body: br#"{"amount":1}"#,
};

fn v2(secret: &str, ts: &str) -> String {
    sign_v2(
        secret.as_bytes(),
        &CanonicalRequest {
            method: REQ.method,
            path: REQ.path,
            query: REQ.query,
            body: REQ.body,
            nonce: NONCE,
            timestamp: ts,
        },
    )
}

fn check(key_id: &str, ts: &str, signature: &str) -> Result<(String, Version), Refusal> {
    let keys = keys();
    let headers = SignatureHeaders {
        key_id: Some(key_id),
        timestamp: Some(ts),
        nonce: Some(NONCE),
        signature: Some(signature),
    };
    verify(&keys, &headers, &REQ, NOW, 120).map(|v| (v.key.label(), v.version))
}

const TS: &str = "1700000000";

#[test]
fn a_v2_signature_from_any_active_key_of_the_service_passes() {
    assert_eq!(
        check("worker", TS, &v2(A, TS)),
        Ok(("worker@new".into(), Version::V2))
    );
    assert_eq!(
        check("worker", TS, &v2(B, TS)),
        Ok(("worker@old".into(), Version::V2))
    );
    assert_eq!(
        check("worker@old", TS, &v2(B, TS)),
        Ok(("worker@old".into(), Version::V2))
    );
}

#[test]
fn any_one_valid_value_of_several_passes() {
    let junk = format!("v2={}", "0".repeat(64));
    let header = format!("{junk}, {}", v2(A, TS));
    assert_eq!(
        check("worker", TS, &header),
        Ok(("worker@new".into(), Version::V2))
    );
}

#[test]
fn missing_headers_are_listed() {
    let keys = keys();
    let headers = SignatureHeaders {
        key_id: Some("worker"),
        signature: Some("v2=00"),
        ..Default::default()
    };
    let err = verify(&keys, &headers, &REQ, NOW, 120).unwrap_err();
    assert_eq!(err, Refusal::Missing(vec![TIMESTAMP_HEADER, NONCE_HEADER]));
    assert_eq!(err.code(), "signature_missing");
}

#[test]
fn malformed_headers_name_the_header() {
    let header_of = |r: Result<(String, Version), Refusal>| match r {
        Err(Refusal::Malformed { header, .. }) => header,
        other => panic!("{other:?}"),
    };
    assert_eq!(header_of(check("Worker!", TS, &v2(A, TS))), KEY_ID_HEADER);
    assert_eq!(
        header_of(check("worker", "soon", &v2(A, TS))),
        TIMESTAMP_HEADER
    );
    assert_eq!(header_of(check("worker", TS, "v2=xyz")), SIGNATURE_HEADER);
    let keys = keys();
    let headers = SignatureHeaders {
        key_id: Some("worker"),
        timestamp: Some(TS),
        nonce: Some("short"),
        signature: Some(&v2(A, TS)),
    };
    assert!(matches!(
        verify(&keys, &headers, &REQ, NOW, 120),
        Err(Refusal::Malformed {
            header: NONCE_HEADER,
            ..
        })
    ));
}

#[test]
fn unknown_and_revoked_keys_have_their_own_codes() {
    assert_eq!(check("nobody", TS, &v2(A, TS)), Err(Refusal::UnknownKey));
    assert_eq!(
        check("worker@nope", TS, &v2(A, TS)),
        Err(Refusal::UnknownKey)
    );
    assert_eq!(
        check("worker@gone", TS, &v2(C, TS)),
        Err(Refusal::KeyRevoked)
    );
    // Naming the service, a signature made with the revoked key's secret.
    assert_eq!(check("worker", TS, &v2(C, TS)), Err(Refusal::KeyRevoked));
}

#[test]
fn timestamps_outside_the_tolerance_are_expired_with_the_server_time() {
    let late = "1699999879"; // 121 s behind
    assert_eq!(
        check("worker", late, &v2(A, late)),
        Err(Refusal::Expired {
            server_time: NOW,
            timestamp: 1_699_999_879,
            tolerance_secs: 120
        })
    );
    let edge = "1700000120";
    assert!(check("worker", edge, &v2(A, edge)).is_ok());
}

#[test]
fn v1_passes_only_for_a_legacy_key() {
    let v1_old = sign_v1(B.as_bytes(), REQ.body);
    assert_eq!(
        check("worker", TS, &v1_old),
        Ok(("worker@old".into(), Version::V1))
    );
    let v1_new = sign_v1(A.as_bytes(), REQ.body);
    assert_eq!(
        check("worker@new", TS, &v1_new),
        Err(Refusal::VersionNotAllowed)
    );
    assert_eq!(check("batch", TS, &v1_new), Err(Refusal::VersionNotAllowed));
    // The service has a legacy key, but this v1 value is not its signature.
    assert!(matches!(
        check("worker", TS, &v1_new),
        Err(Refusal::Invalid { .. })
    ));
    // v2 is preferred when both match.
    let both = format!("{v1_old},{}", v2(B, TS));
    assert_eq!(
        check("worker@old", TS, &both),
        Ok(("worker@old".into(), Version::V2))
    );
}

#[test]
fn a_changed_request_or_a_wrong_secret_is_invalid_and_shows_the_canonical_string() {
    let signature = v2(A, TS);
    let keys = keys();
    let headers = SignatureHeaders {
        key_id: Some("worker"),
        timestamp: Some(TS),
        nonce: Some(NONCE),
        signature: Some(&signature),
    };
    let altered = SignedRequest {
        body: br#"{"amount":9}"#,
        ..REQ
    };
    match verify(&keys, &headers, &altered, NOW, 120) {
        Err(Refusal::Invalid { canonical }) => {
            assert!(canonical.starts_with("POST\n/v1/service/reservations\na=1&b=2\n"));
            assert!(canonical.ends_with(&format!("\n{NONCE}\n{TS}")));
        }
        other => panic!("{other:?}"),
    }
    let requery = SignedRequest {
        query: "a=1&b=3",
        ..REQ
    };
    assert!(verify(&keys, &headers, &requery, NOW, 120).is_err());
    let reordered = SignedRequest {
        query: "a=1&b=2",
        ..REQ
    };
    assert!(verify(&keys, &headers, &reordered, NOW, 120).is_ok());
    assert!(matches!(
        check("batch", TS, &v2(B, TS)),
        Err(Refusal::Invalid { .. })
    ));
}
