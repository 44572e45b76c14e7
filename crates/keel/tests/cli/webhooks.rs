//! `keel webhooks list|replay` on the inbox of a data dir.

use super::*;

fn seed(data_dir: &Path) -> String {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = keel_store::connect(&keel_store::ConnectOptions {
            database_url: None,
            data_dir: data_dir.to_path_buf(),
            connect_timeout: Duration::from_secs(5),
            max_connections: 2,
        })
        .await
        .unwrap();
        let (event, _) = store
            .record_inbox_event(keel_store::NewInboxEvent {
                provider: "stripe".into(),
                provider_event_id: "evt_cli".into(),
                event_type: "invoice.paid".into(),
                payload: serde_json::json!({"id": "evt_cli"}),
                received_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        let now = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
        let claimed = store.claim_inbox_events(now, now, 10).await.unwrap();
        let fail = keel_store::InboxResolution::Fail {
            error: "unknown user".into(),
            retry_at: None,
        };
        store
            .resolve_inbox_event(event.id, claimed[0].attempts, fail, now)
            .await
            .unwrap();
        store.close().await;
        event.id.to_string()
    })
}

#[test]
fn webhooks_list_filters_by_status_and_replay_makes_a_dead_letter_due() {
    let dir = tempfile::tempdir().unwrap();
    let id = seed(&dir.path().join("keel-data"));
    let list = |status: &str| {
        keel()
            .current_dir(dir.path())
            .args(["webhooks", "list", "--status", status])
            .output()
            .unwrap()
    };
    let out = list("dead");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(&id) && stdout.contains("error=unknown user"),
        "{stdout}"
    );
    assert!(text(&list("pending").stdout).is_empty());

    let out = keel()
        .current_dir(dir.path())
        .args(["webhooks", "replay", &id])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&list("pending").stdout).contains(&id));
    assert!(text(&list("dead").stdout).is_empty());

    let out = keel()
        .current_dir(dir.path())
        .args(["webhooks", "replay", "whk_nope"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = list("sideways");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("unknown status"));
}
