//! The audit log and the store's lifecycle (migrations, schema versions).

use keel_core::ids::TenantId;
use keel_store::{connect, AuditQuery, Backend, NewAuditEvent, StoreError, TenantScope};

use crate::harness;

fn event(action: &str) -> NewAuditEvent {
    NewAuditEvent {
        actor: "system".into(),
        action: action.into(),
        target: Some("thing".into()),
        request_id: Some("req-1".into()),
        data: serde_json::json!({"n": 1}),
    }
}

async fn a_fresh_store_is_migrated_and_reachable(backend: Backend) {
    let h = harness(backend).await;
    h.store.ping().await.unwrap();
    let status = h.store.schema_status().await.unwrap();
    assert!(status.is_current(), "{status:?}");
    assert!(status.expected >= 1);
}

async fn migrating_again_is_a_no_op(backend: Backend) {
    let h = harness(backend).await;
    let scope = TenantScope::new(TenantId::new());
    h.store.append_audit(&scope, event("kept")).await.unwrap();
    h.store.close().await;
    let again = connect(&h.opts).await.unwrap();
    assert!(again.schema_status().await.unwrap().is_current());
    let rows = again
        .list_audit(
            &scope,
            &AuditQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await;
    assert_eq!(rows.unwrap().len(), 1);
}

async fn audit_rows_are_scoped_to_their_tenant(backend: Backend) {
    let h = harness(backend).await;
    let (a, b) = (
        TenantScope::new(TenantId::new()),
        TenantScope::new(TenantId::new()),
    );
    let written = h.store.append_audit(&a, event("auth.login")).await.unwrap();
    h.store
        .append_audit(&b, event("auth.logout"))
        .await
        .unwrap();
    let q = AuditQuery {
        limit: 50,
        ..Default::default()
    };
    let seen_a = h.store.list_audit(&a, &q).await.unwrap();
    assert_eq!(seen_a, vec![written.clone()]);
    assert_eq!(seen_a[0].data, serde_json::json!({"n": 1}));
    assert_eq!(seen_a[0].tenant_id, a.tenant().to_string());
    let seen_b = h.store.list_audit(&b, &q).await.unwrap();
    assert_eq!(seen_b.len(), 1);
    assert_eq!(seen_b[0].action, "auth.logout");
}

async fn audit_pages_newest_first_with_a_cursor_and_filter(backend: Backend) {
    let h = harness(backend).await;
    let scope = TenantScope::new(TenantId::new());
    let mut ids = Vec::new();
    for i in 0..5 {
        let action = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(
            h.store
                .append_audit(&scope, event(action))
                .await
                .unwrap()
                .id,
        );
    }
    let q = AuditQuery {
        limit: 2,
        ..Default::default()
    };
    let first = h.store.list_audit(&scope, &q);
    let first = first.await.unwrap();
    assert_eq!(
        first.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );
    let next = AuditQuery {
        limit: 10,
        before: Some(ids[3]),
        ..Default::default()
    };
    let rest = h.store.list_audit(&scope, &next).await.unwrap();
    assert_eq!(
        rest.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1], ids[0]]
    );
    let odd = AuditQuery {
        limit: 10,
        action: Some("odd".into()),
        ..Default::default()
    };
    let odd = h.store.list_audit(&scope, &odd).await.unwrap();
    assert_eq!(
        odd.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[3], ids[1]]
    );
}

async fn concurrent_appends_are_all_kept(backend: Backend) {
    let h = harness(backend).await;
    let scope = TenantScope::new(TenantId::new());
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let store = h.store.clone();
            tokio::spawn(async move { store.append_audit(&scope, event("burst")).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let q = AuditQuery {
        limit: 500,
        ..Default::default()
    };
    let all = h.store.list_audit(&scope, &q);
    assert_eq!(all.await.unwrap().len(), 64);
}

async fn a_database_from_a_newer_keel_is_refused(backend: Backend) {
    let h = harness(backend).await;
    h.store.close().await;
    let future_row = "INSERT INTO _sqlx_migrations
        (version, description, success, checksum, execution_time)
        VALUES (999999, 'from the future', TRUE, x'00', 0)";
    match backend {
        Backend::Sqlite => {
            let url = format!("sqlite://{}", h.opts.data_dir.join("keel.db").display());
            let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query(future_row).execute(&mut conn).await.unwrap();
        }
        Backend::Postgres => {
            let url = h.opts.database_url.clone().unwrap();
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            let row = future_row.replace("x'00'", "'\\x00'::bytea");
            sqlx::query(&row).execute(&mut conn).await.unwrap();
        }
    }
    match connect(&h.opts).await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(found, 999999);
            assert!(supported < found);
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("a newer database was accepted"),
    }
}

on_both_backends!(
    a_fresh_store_is_migrated_and_reachable,
    migrating_again_is_a_no_op,
    audit_rows_are_scoped_to_their_tenant,
    audit_pages_newest_first_with_a_cursor_and_filter,
    concurrent_appends_are_all_kept,
    a_database_from_a_newer_keel_is_refused,
);
