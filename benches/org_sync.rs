//! Org sync from a real OpenLDAP `slapd` holding 100,000 people and 10,000 groups of 20
//! members (loaded offline with `slapadd`).
//!
//! `cargo bench --bench org_sync` prints: a plain `ldapsearch` of the same entries (the floor),
//! the full sync's wall time and peak RSS, an incremental sync of 100 changes, and building the
//! in-memory index from the stored snapshot. Targets (issue 6): full ≤ 30 s and ≤ 300 MB,
//! incremental ≤ 1 s, index ≤ 1 s. SQLite by default; `BENCH_DATABASE_URL=postgres://…` (an
//! empty database) runs it on PostgreSQL. Needs `slapd` and `ldap-utils`.

use std::collections::HashSet;
use std::io::Write;
use std::time::{Duration, Instant};

#[path = "support/rss.rs"]
mod rss;
use rss::{peak_rss_mb, reset_peak};
use tollgate::clock::SystemClock;
use tollgate::config::{DatabaseConfig, DatabaseUrl, Secret};
use tollgate::idp::ldap::{Flavor, LdapConfig, LdapDirectory};
use tollgate::people::cache::OrgCache;
use tollgate::people::sync::{self, Quiet};
use tollgate::store::Store;
use tollgate_fakes::slapd::{self, BASE, PASSWORD, SERVICE_DN, Slapd};

const PEOPLE: usize = 100_000;
const GROUPS: usize = 10_000;
const MEMBERS: usize = 20;
const FANOUT: usize = 8;
const CHANGES: usize = 100;

fn uid(i: usize) -> String {
    format!("u{i:06}")
}

/// Streams the LDIF to a file: people in a tree of `FANOUT` reports each, then the groups.
/// `modifyTimestamp` is set in the past, as on a directory that has been running a while.
fn write_ldif(path: &std::path::Path) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let head = slapd::seed(0);
    // The seed's base entries and service account, without its sample people and groups.
    for entry in head.split("\n\n").take(5) {
        writeln!(out, "{entry}\n")?;
    }
    for i in 0..PEOPLE {
        write!(
            out,
            "dn: uid={u},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {u}\ncn: Person {i}\nsn: {i}\n\
             mail: {u}@corp.example\ntitle: {t}\ndepartmentNumber: D{d}\nemployeeType: full-time\n\
             modifyTimestamp: 20250101000000Z\n",
            u = uid(i),
            t = ["Engineer", "Manager", "Analyst", "Director"][i % 4],
            d = i % 50,
        )?;
        if i > 0 {
            writeln!(
                out,
                "manager: uid={},ou=people,{BASE}",
                uid((i - 1) / FANOUT)
            )?;
        }
        writeln!(out)?;
    }
    for g in 0..GROUPS {
        writeln!(
            out,
            "dn: cn=group-{g},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: group-{g}\n\
             owner: uid={},ou=people,{BASE}\nmodifyTimestamp: 20250101000000Z",
            uid(g % PEOPLE)
        )?;
        for k in 0..MEMBERS {
            writeln!(
                out,
                "member: uid={},ou=people,{BASE}",
                uid((g * 37 + k * 7919) % PEOPLE)
            )?;
        }
        writeln!(out)?;
    }
    out.flush()
}

async fn change_titles(url: &str) {
    let (conn, mut ldap) = ldap3::LdapConnAsync::new(url).await.expect("connect");
    ldap3::drive!(conn);
    ldap.simple_bind(&format!("cn=admin,{BASE}"), PASSWORD)
        .await
        .expect("bind");
    for i in 0..CHANGES {
        let dn = format!("uid={},ou=people,{BASE}", uid(i * 997 % PEOPLE));
        ldap.modify(
            &dn,
            vec![ldap3::Mod::Replace("title", HashSet::from(["Principal"]))],
        )
        .await
        .expect("modify");
    }
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    if !slapd::available() {
        eprintln!("org_sync bench needs slapd: apt-get install slapd ldap-utils");
        return;
    }
    let dir = std::env::temp_dir().join(format!("tollgate-bench-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("dir");
    let ldif = dir.join("seed.ldif");
    let started = Instant::now();
    write_ldif(&ldif).expect("write LDIF");
    let server = Slapd::start_from(dir.clone(), &ldif);
    println!(
        "directory: {PEOPLE} people, {GROUPS} groups × {MEMBERS} members, loaded with slapadd in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let search = std::process::Command::new("ldapsearch")
        .args([
            "-x",
            "-LLL",
            "-H",
            &server.url,
            "-D",
            SERVICE_DN,
            "-w",
            PASSWORD,
            "-b",
            BASE,
        ])
        .args([
            "-E",
            "pr=1000/noprompt",
            "(|(objectClass=inetOrgPerson)(objectClass=groupOfNames))",
        ])
        .args([
            "mail",
            "cn",
            "title",
            "departmentNumber",
            "manager",
            "employeeType",
            "member",
            "owner",
        ])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("ldapsearch runs");
    assert!(search.success());
    let floor = started.elapsed();

    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| format!("sqlite://{}/bench.db", dir.display()));
    let store = Store::connect(&DatabaseConfig {
        url: DatabaseUrl::parse(&url).expect("database URL"),
        max_connections: 5,
        connect_timeout: Duration::from_secs(10),
    })
    .await
    .expect("database");
    store.migrate().await.expect("migrate");
    let directory = LdapDirectory::new(LdapConfig {
        url: server.url.clone(),
        bind_dn: SERVICE_DN.into(),
        bind_password: Secret::new(PASSWORD),
        base_dn: BASE.into(),
        people_filter: "(objectClass=inetOrgPerson)".into(),
        group_filter: "(objectClass=groupOfNames)".into(),
        flavor: Flavor::OpenLdap,
        page_size: 1000,
        empty_group_member: String::new(),
    });

    reset_peak();
    let base_rss = peak_rss_mb();
    let started = Instant::now();
    let full = sync::sync(&store, &directory, &SystemClock, true, &Quiet)
        .await
        .expect("full sync");
    let full_time = started.elapsed();
    let full_peak = peak_rss_mb();
    assert_eq!(full.people, PEOPLE);
    assert_eq!(full.groups, GROUPS);

    change_titles(&server.url).await;
    let started = Instant::now();
    let incremental = sync::sync(&store, &directory, &SystemClock, false, &Quiet)
        .await
        .expect("incremental");
    let incremental_time = started.elapsed();
    assert_eq!(incremental.people, CHANGES, "{incremental:?}");

    reset_peak();
    let cache = OrgCache::new();
    let started = Instant::now();
    cache.refresh(&store).await.expect("refresh");
    let index_time = started.elapsed();
    assert_eq!(cache.index().map(|i| i.len()), Some(PEOPLE));

    println!("database: {}", store.backend().as_str());
    println!("| step | figure | target |");
    println!("|---|---|---|");
    println!(
        "| ldapsearch of the same entries (pr=1000) | {:.2} s | (floor) |",
        floor.as_secs_f64()
    );
    println!(
        "| full sync ({} pages) | {:.2} s, peak RSS {:.0} MB (process at start {:.0} MB) | ≤ 30 s, ≤ 300 MB |",
        full.pages,
        full_time.as_secs_f64(),
        full_peak,
        base_rss
    );
    println!(
        "| incremental sync of {CHANGES} changes | {:.0} ms | ≤ 1 s |",
        incremental_time.as_secs_f64() * 1000.0
    );
    println!(
        "| load snapshot and build index | {:.0} ms | ≤ 1 s |",
        index_time.as_secs_f64() * 1000.0
    );
    drop(server);
}
