//! `wm migrate-store`: copies every row of one store into an empty PostgreSQL one, so an
//! installation that outgrew SQLite (several consoles) keeps its users, sessions, tokens,
//! containers, leases, quotas, courses and audit log.

use super::{Result, Store, StoreError};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet};

/// Copies every table of the store at `from` into the empty PostgreSQL store at `to`,
/// in one transaction, parents before the rows that refer to them; answers how many rows
/// each table got. Both are brought to this version's schema first. No console may use
/// either meanwhile.
pub async fn copy_store(from: &str, to: &str) -> Result<Vec<(String, u64)>> {
    let target = Store::connect(to).await?;
    if !target.is_postgres() {
        return Err(StoreError::Backup(
            "the store to copy into must be PostgreSQL (postgres://...)".into(),
        ));
    }
    let source = Store::connect(from).await?;
    let columns = target_columns(&target).await?;
    let order = parents_first(&target, columns.keys().cloned().collect()).await?;
    for table in &order {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
            .fetch_one(&target.pool)
            .await?;
        if n > 0 {
            return Err(StoreError::Backup(format!(
                "the store to copy into is not empty (table {table} has {n} rows): give it an empty database"
            )));
        }
    }
    let mut tx = target.pool.begin().await?;
    let mut copied = Vec::new();
    for table in &order {
        let cols = &columns[table];
        let names: Vec<String> = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect();
        let rows = sqlx::query(&format!("SELECT {} FROM \"{table}\"", names.join(", ")))
            .fetch_all(&source.pool)
            .await?;
        let insert = format!(
            "INSERT INTO \"{table}\" ({}) VALUES ({})",
            names.join(", "),
            (1..=cols.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for row in &rows {
            let mut q = sqlx::query(&insert);
            for (i, (name, kind)) in cols.iter().enumerate() {
                q = match kind.as_str() {
                    "bigint" | "integer" | "smallint" => q.bind(row.try_get::<Option<i64>, _>(i)?),
                    "text" | "character varying" => q.bind(row.try_get::<Option<String>, _>(i)?),
                    other => {
                        return Err(StoreError::Backup(format!(
                        "column {table}.{name} is of type {other}, which this copy does not know"
                    )))
                    }
                };
            }
            q.execute(&mut *tx).await?;
        }
        copied.push((table.clone(), rows.len() as u64));
    }
    tx.commit().await?;
    source.close().await;
    target.close().await;
    Ok(copied)
}

/// Every table of the PostgreSQL store but the migrations', with its columns and their
/// types, in order.
async fn target_columns(target: &Store) -> Result<BTreeMap<String, Vec<(String, String)>>> {
    let rows = sqlx::query(
        "SELECT c.table_name::text, c.column_name::text, c.data_type::text \
         FROM information_schema.columns c JOIN information_schema.tables t \
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
           AND c.table_name <> '_sqlx_migrations' \
         ORDER BY c.table_name, c.ordinal_position",
    )
    .fetch_all(&target.pool)
    .await?;
    let mut tables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for r in rows {
        tables
            .entry(r.try_get(0)?)
            .or_default()
            .push((r.try_get(1)?, r.try_get(2)?));
    }
    Ok(tables)
}

/// `tables` ordered so that each comes after the tables its foreign keys name.
async fn parents_first(target: &Store, tables: BTreeSet<String>) -> Result<Vec<String>> {
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT conrelid::regclass::text, confrelid::regclass::text FROM pg_constraint \
         WHERE contype = 'f' AND connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&target.pool)
    .await?
    {
        let (child, parent): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        if child != parent {
            parents.entry(child).or_default().insert(parent);
        }
    }
    let mut order = Vec::new();
    let mut left = tables;
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|t| {
                parents
                    .get(*t)
                    .is_none_or(|ps| ps.iter().all(|p| !left.contains(p)))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Backup(format!(
                "the tables {left:?} refer to each other: no order to copy them in"
            )));
        }
        for t in ready {
            left.remove(&t);
            order.push(t);
        }
    }
    Ok(order)
}
