//! The store's own connections.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use tollgate::store::{Db, nodelay};

use crate::support::database::postgres_admin_url;
use crate::support::{self, TestDatabase};

/// sqlx 0.9.0 leaves Nagle's algorithm on; the store turns it off on every connection it
/// opens to PostgreSQL (`store::nodelay`), or a statement spanning two segments waits 40 ms
/// for the server's delayed ACK.
#[tokio::test]
async fn every_postgres_connection_has_tcp_nodelay() {
    if postgres_admin_url().is_none() {
        return;
    }
    let db = TestDatabase::create().await;
    let store = support::store(&db).await;
    let Db::Postgres(pool) = store.db() else {
        return;
    };
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.acquire().await.expect("connection"));
    }
    let port = PgConnectOptions::from_str(db.url())
        .expect("url")
        .get_port();
    let (all, without) = nodelay::sockets_to(port);
    assert!(all >= 4, "the pool's connections are seen: {all}");
    assert_eq!(
        without, 0,
        "{without} of {all} sockets to the database lack TCP_NODELAY"
    );
}
