//! Storage: one interface over SQLite (the embedded default) and PostgreSQL.
//!
//! SQL is written once with `$1…$N` binds, which both drivers accept; [`on_db!`] and [`on_tx!`]
//! run the same statement against whichever pool or transaction is live. Column types differ,
//! so the two migration folders mirror each other (`migrations/sqlite`, `migrations/postgres`).

pub mod accounts;
pub mod forge;
pub mod grants;
pub mod holdings;
pub mod idp_events;
pub mod inactive_cases;
pub mod inbound;
pub mod lifecycle_runs;
pub mod nodelay;
pub mod notices;
pub mod org;
pub mod org_changes;
pub mod requests;
pub mod scim_resources;
pub mod sealed;
pub mod selfcheck;
pub mod tenant_links;
pub mod tenants;
pub mod webhook_sources;

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

use crate::config::{DatabaseConfig, DatabaseUrl};
use crate::ids::{TenantKey, TicketKey};

/// Our migrations live in their own table: apalis's SQLite migrations use `_sqlx_migrations`,
/// and two migrators sharing one table each see the other's rows as unknown versions.
const MIGRATIONS_TABLE: &str = "_tollgate_migrations";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database ({url:?}): {source}")]
    Connect {
        url: DatabaseUrl,
        source: sqlx::Error,
    },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("job queue setup failed: {0}")]
    JobQueueSetup(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Something around the database failed (queueing a job, a reading task).
    #[error("{0}")]
    Internal(String),
    /// What is stored cannot be read as what it should be (a damaged row, or one a newer
    /// release wrote): waiting does not help, so it is not reported as an outage.
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
}

/// A tenant key as a row holds it, checked as when it came in: text that does not parse is
/// damaged data, not an outage.
pub fn stored_tenant(tenant: &str) -> Result<TenantKey, StoreError> {
    TenantKey::parse(tenant).map_err(StoreError::corrupt)
}

/// A tenant and ticket as a row (or a queued job) holds them; see [`stored_tenant`].
pub fn stored_ticket(tenant: &str, ticket: &str) -> Result<(TenantKey, TicketKey), StoreError> {
    let ticket = TicketKey::parse(ticket).map_err(StoreError::corrupt)?;
    Ok((stored_tenant(tenant)?, ticket))
}

impl StoreError {
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt(what.into())
    }

    /// Whether trying again later may succeed (not for data that cannot be read).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Corrupt(_))
    }

    /// A unique-constraint violation, which callers often treat as "already done".
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Database(sqlx::Error::Database(e)) => e.is_unique_violation(),
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// An open transaction on either backend. Dropping it without [`Tx::commit`] rolls back.
#[derive(Debug)]
pub enum Tx {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// Runs `$body` with `$conn` bound to the live pool, whichever backend it is.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$conn:ident| $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite($conn) => $body,
            $crate::store::Db::Postgres($conn) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the open transaction's connection.
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::store::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}

#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    /// Opens the pool and checks the database answers, so a wrong URL fails at start.
    pub async fn connect(config: &DatabaseConfig) -> Result<Self, StoreError> {
        let connect_error = |source| StoreError::Connect {
            url: config.url.clone(),
            source,
        };
        let db = match &config.url {
            DatabaseUrl::Sqlite(url) => {
                // WAL with synchronous=NORMAL is durable across process crashes; the audit log
                // needs that, so apalis's own `setup()` (synchronous=OFF) is never called.
                let options = SqliteConnectOptions::from_str(url)
                    .map_err(connect_error)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(10))
                    .foreign_keys(true);
                let pool = SqlitePoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.connect_timeout)
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                Db::Sqlite(pool)
            }
            DatabaseUrl::Postgres(url) => {
                let options = PgConnectOptions::from_str(url).map_err(connect_error)?;
                let port = options.get_port();
                let pool = PgPoolOptions::new()
                    .max_connections(config.max_connections)
                    .acquire_timeout(config.connect_timeout)
                    .after_connect(move |_, _| {
                        Box::pin(async move {
                            nodelay::set_on_sockets_to(port);
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await
                    .map_err(connect_error)?;
                Db::Postgres(pool)
            }
        };
        Ok(Self { db })
    }

    pub fn from_db(db: Db) -> Self {
        Self { db }
    }

    /// A store for one busy writer (the ingress writer's group commit). On SQLite it has its own
    /// connection that does not sleep in SQLite's busy handler (which backs off in steps of up
    /// to 100 ms while another connection writes): [`Self::begin`] retries every millisecond
    /// instead, so the writer gets the lock as soon as it is free. On PostgreSQL it is this store.
    pub async fn dedicated_writer(&self) -> Result<Self, StoreError> {
        match &self.db {
            Db::Postgres(_) => Ok(self.clone()),
            Db::Sqlite(pool) => {
                let options = (*pool.connect_options())
                    .clone()
                    .busy_timeout(Duration::ZERO);
                let writer = SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(options)
                    .await?;
                Ok(Self {
                    db: Db::Sqlite(writer),
                })
            }
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn backend(&self) -> Backend {
        match self.db {
            Db::Sqlite(_) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    fn migrator(&self) -> Migrator {
        let mut migrator = match self.db {
            Db::Sqlite(_) => sqlx::migrate!("./migrations/sqlite"),
            Db::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
        };
        migrator.dangerous_set_table_name(MIGRATIONS_TABLE);
        migrator
    }

    /// Applies our migrations and the job queue's. Safe to run on every start and from several
    /// processes at once (sqlx takes an advisory lock on PostgreSQL).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = self.migrator();
        on_db!(&self.db, |pool| migrator.run(pool).await)?;
        match &self.db {
            Db::Sqlite(pool) => apalis_sqlite::SqliteStorage::migrations()
                .run(pool)
                .await
                .map_err(|e| StoreError::JobQueueSetup(e.to_string()))?,
            Db::Postgres(pool) => apalis_postgres::PostgresStorage::setup(pool)
                .await
                .map_err(|e| StoreError::JobQueueSetup(e.to_string()))?,
        }
        Ok(())
    }

    /// Applies our migrations up to and including `version`, and no further: how a test
    /// builds a database as an older release left it, to check what a later migration does
    /// with its rows.
    pub async fn migrate_to(&self, version: i64) -> Result<(), StoreError> {
        let migrator = self.migrator();
        on_db!(&self.db, |pool| migrator.run_to(version, pool).await)?;
        Ok(())
    }

    /// Versions this build knows that the database has not applied (successfully).
    pub async fn pending_migrations(&self) -> Result<Vec<i64>, StoreError> {
        let applied: Vec<i64> = on_db!(&self.db, |pool| {
            sqlx::query_scalar("SELECT version FROM _tollgate_migrations WHERE success = $1")
                .bind(true)
                .fetch_all(pool)
                .await
        })?;
        Ok(self
            .migrator()
            .iter()
            .map(|m| m.version)
            .filter(|v| !applied.contains(v))
            .collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(&self.db, |pool| sqlx::query("SELECT 1")
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads and then writes fails at once with
    /// SQLITE_BUSY when another connection wrote in between, which busy_timeout cannot help.
    pub async fn begin(&self) -> Result<Tx, StoreError> {
        Ok(match &self.db {
            Db::Sqlite(pool) => Tx::Sqlite(begin_immediate(pool).await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    pub async fn close(&self) {
        on_db!(&self.db, |pool| pool.close().await);
    }
}

/// `BEGIN IMMEDIATE`, retried every millisecond while another connection holds the write lock
/// (only a connection without a busy timeout sees that), for at most ten seconds.
async fn begin_immediate(pool: &SqlitePool) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match pool.begin_with("BEGIN IMMEDIATE").await {
            Err(sqlx::Error::Database(e))
                if is_busy(e.as_ref()) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            other => return other,
        }
    }
}

/// SQLITE_BUSY or one of its extended codes (`code & 0xff == 5`).
fn is_busy(e: &dyn sqlx::error::DatabaseError) -> bool {
    e.code()
        .and_then(|c| c.parse::<i32>().ok())
        .is_some_and(|c| c & 0xff == 5)
}

impl Tx {
    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), StoreError> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }
}
