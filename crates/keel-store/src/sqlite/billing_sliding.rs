//! Sliding-window gates on SQLite. The writer runs one operation at a time, so summing
//! the counted buckets and adding to the current one cannot interleave with another
//! reservation: one statement does both.

use rusqlite::{params, Connection};

use super::lite::{self, map_lite};
use crate::billing_calc::SlidingGate;
use crate::{Gate, StoreResult};

/// Adds the gate's amount to the current bucket if every counted bucket plus it stays
/// within the limit (the `SELECT … WHERE` inserts nothing otherwise).
pub(super) fn take(
    conn: &Connection,
    tenant: &str,
    owner: &str,
    gate: &Gate,
    sliding: &SlidingGate,
) -> StoreResult<bool> {
    let members = lite::json(&sliding.members)?;
    let done = conn
        .prepare_cached(
            r#"INSERT INTO quota_counters (tenant_id, owner, meter, "window", committed, reserved)
               SELECT ?1, ?2, ?3, ?4, 0, ?5
               WHERE (SELECT COALESCE(SUM(committed + reserved), 0) FROM quota_counters
                      WHERE tenant_id = ?1 AND owner = ?2 AND meter = ?3
                        AND "window" IN (SELECT value FROM json_each(?7))) + ?5 <= ?6
               ON CONFLICT (tenant_id, owner, meter, "window") DO UPDATE
               SET reserved = reserved + excluded.reserved"#,
        )
        .and_then(|mut s| {
            s.execute(params![
                tenant,
                owner,
                gate.key.meter,
                gate.key.window,
                gate.amount,
                gate.limit,
                members
            ])
        })
        .map_err(map_lite)?;
    Ok(done == 1)
}

/// Committed + reserved over every counted bucket.
pub(super) fn used(
    conn: &Connection,
    tenant: &str,
    owner: &str,
    gate: &Gate,
    sliding: &SlidingGate,
) -> StoreResult<i64> {
    let members = lite::json(&sliding.members)?;
    conn.prepare_cached(
        r#"SELECT COALESCE(SUM(committed + reserved), 0) FROM quota_counters
           WHERE tenant_id = ?1 AND owner = ?2 AND meter = ?3
             AND "window" IN (SELECT value FROM json_each(?4))"#,
    )
    .and_then(|mut s| {
        s.query_row(params![tenant, owner, gate.key.meter, members], |row| {
            row.get(0)
        })
    })
    .map_err(map_lite)
}
