//! Every sealed value the database holds, for `tollgate secrets rotate`: each is opened with
//! whichever configured key sealed it and sealed again under the newest.

use super::{Store, StoreError};
use crate::on_db;
use crate::secrets::SecretKey;

/// A column of sealed values: its table, key column, the column, and the context each value
/// is bound to (from the row's key).
struct Column {
    table: &'static str,
    key: &'static str,
    column: &'static str,
    context: fn(&str) -> String,
}

const COLUMNS: &[Column] = &[
    Column {
        table: "tenants",
        key: "client_key",
        column: "shared_secret",
        context: crate::tenant::Tenant::secret_context,
    },
    Column {
        table: "forge_installations",
        key: "installation_id",
        column: "system_token",
        context: super::forge::token_context,
    },
    Column {
        table: "webhook_sources",
        key: "tenant",
        column: "api_token",
        context: super::webhook_sources::token_context,
    },
    Column {
        table: "scim_tokens",
        key: "id",
        column: "token",
        context: super::scim_resources::token_context,
    },
];

/// What a rotation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Sealed again under the newest key.
    pub resealed: usize,
    /// Already under it.
    pub current: usize,
    /// `table/key: why` of each value no configured key opens (left as it was).
    pub failed: Vec<String>,
}

/// Seals every stored secret again under `keys`' newest key, and records the rotation on the
/// system audit chain. A value changed meanwhile by the service (a re-install) is left to it.
pub async fn reseal_all(store: &Store, keys: &SecretKey) -> Result<Resealed, StoreError> {
    let mut done = Resealed::default();
    for c in COLUMNS {
        let select = format!(
            "SELECT {key}, {column} FROM {table} WHERE {column} IS NOT NULL AND {column} <> ''",
            key = c.key,
            column = c.column,
            table = c.table
        );
        let rows: Vec<(String, String)> = on_db!(store.db(), |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(select.clone()))
                .fetch_all(pool)
                .await
        })?;
        let update = format!(
            "UPDATE {table} SET {column} = $1 WHERE {key} = $2 AND {column} = $3",
            key = c.key,
            column = c.column,
            table = c.table
        );
        for (id, sealed) in rows {
            if keys.is_current(&sealed) {
                done.current += 1;
                continue;
            }
            let context = (c.context)(&id);
            let again = keys
                .unseal(&sealed, &context)
                .and_then(|plain| keys.seal(&plain, &context));
            let again = match again {
                Ok(again) => again,
                Err(e) => {
                    done.failed.push(format!("{}/{id}: {e}", c.table));
                    continue;
                }
            };
            on_db!(store.db(), |pool| {
                sqlx::query(sqlx::AssertSqlSafe(update.clone()))
                    .bind(&again)
                    .bind(&id)
                    .bind(&sealed)
                    .execute(pool)
                    .await
                    .map(|_| ())
            })?;
            done.resealed += 1;
        }
    }
    Ok(done)
}
