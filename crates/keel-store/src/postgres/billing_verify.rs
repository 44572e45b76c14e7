//! Recounting every counter from the ledger and the active reservations.

use sqlx::PgConnection;

use super::PostgresStore;
use crate::billing_calc::{self, committed_delta, tally, CounterRef, Tally, TENANT_OWNER};
use crate::error::map_sqlx;
use crate::rows::Columns;
use crate::{CounterMismatch, StoreResult};

/// A check reads one REPEATABLE READ snapshot. A repair first locks the counters table
/// against writes: a transaction whose ledger or reservation rows count towards a counter
/// also writes that counter, so once the lock is granted none is half-way and every
/// statement here sees counters, ledger and reservations that agree.
pub(super) async fn verify(
    store: &PostgresStore,
    repair: bool,
) -> StoreResult<Vec<CounterMismatch>> {
    let mut tx = store.pool().begin().await.map_err(map_sqlx)?;
    let setup = if repair {
        "LOCK TABLE quota_counters IN SHARE ROW EXCLUSIVE MODE"
    } else {
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
    };
    sqlx::query(setup)
        .execute(&mut *tx)
        .await
        .map_err(map_sqlx)?;
    let stored = stored(&mut tx).await?;
    let expected = expected(&mut tx).await?;
    let found = billing_calc::mismatches(&stored, &expected);
    if repair {
        for m in &found {
            overwrite(&mut tx, m).await?;
        }
    }
    tx.commit().await.map_err(map_sqlx)?;
    Ok(found)
}

async fn stored(conn: &mut PgConnection) -> StoreResult<Tally> {
    let rows = sqlx::query(
        r#"SELECT tenant_id, owner, meter, "window" AS win, committed, reserved
           FROM quota_counters"#,
    )
    .fetch_all(conn)
    .await
    .map_err(map_sqlx)?;
    let mut counters = Tally::new();
    for row in &rows {
        let at = counter_ref(row)?;
        tally(
            &mut counters,
            at,
            row.int("committed")?,
            row.int("reserved")?,
        );
    }
    Ok(counters)
}

/// Sums per counter key in SQL (over the stored keys' JSON arrays), so memory grows with
/// the number of counters, not of entries.
async fn expected(conn: &mut PgConnection) -> StoreResult<Tally> {
    let settled = sqlx::query(
        "SELECT l.tenant_id,
                CASE c.value ->> 'owner' WHEN 'tenant' THEN 'tenant' ELSE l.user_id END AS owner,
                c.value ->> 'meter' AS meter,
                c.value ->> 'window' AS win,
                SUM(l.amount)::bigint AS amount, SUM(l.cost_micros)::bigint AS cost_micros
         FROM usage_ledger AS l CROSS JOIN LATERAL jsonb_array_elements(l.counters) AS c
         GROUP BY 1, 2, 3, 4",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(map_sqlx)?;
    let mut counters = Tally::new();
    for row in &settled {
        let at = counter_ref(row)?;
        let used = committed_delta(&at.key, row.int("amount")?, row.int("cost_micros")?);
        tally(&mut counters, at, used, 0);
    }
    let held = sqlx::query(
        "SELECT r.tenant_id,
                CASE g.value -> 'key' ->> 'owner' WHEN 'tenant' THEN 'tenant'
                     ELSE r.user_id END AS owner,
                g.value -> 'key' ->> 'meter' AS meter,
                g.value -> 'key' ->> 'window' AS win,
                SUM((g.value ->> 'amount')::bigint)::bigint AS amount
         FROM reservations AS r CROSS JOIN LATERAL jsonb_array_elements(r.gates) AS g
         WHERE r.status = 'active'
         GROUP BY 1, 2, 3, 4",
    )
    .fetch_all(conn)
    .await
    .map_err(map_sqlx)?;
    for row in &held {
        tally(&mut counters, counter_ref(row)?, 0, row.int("amount")?);
    }
    Ok(counters)
}

fn counter_ref(row: &impl Columns) -> StoreResult<CounterRef> {
    Ok(CounterRef::stored(
        row.text("tenant_id")?,
        row.text("owner")?,
        row.text("meter")?,
        row.text("win")?,
    ))
}

async fn overwrite(conn: &mut PgConnection, m: &CounterMismatch) -> StoreResult<()> {
    sqlx::query(
        r#"INSERT INTO quota_counters (tenant_id, owner, meter, "window", committed, reserved)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (tenant_id, owner, meter, "window") DO UPDATE
           SET committed = excluded.committed, reserved = excluded.reserved"#,
    )
    .bind(&m.tenant_id)
    .bind(m.user_id.as_deref().unwrap_or(TENANT_OWNER))
    .bind(&m.key.meter)
    .bind(&m.key.window)
    .bind(m.expected.0)
    .bind(m.expected.1)
    .execute(conn)
    .await
    .map_err(map_sqlx)?;
    Ok(())
}
