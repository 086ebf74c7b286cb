//! A throwaway OpenLDAP `slapd` (API-NOTES §7.2), the real LDAP server of the identity tests
//! and benchmarks: configured in a temp dir, loaded offline with `slapadd`, listening on a free
//! loopback port, killed (and its directory removed) on drop.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BASE: &str = "dc=example,dc=com";
pub const SERVICE_DN: &str = "cn=tollgate,dc=example,dc=com";
pub const READER_DN: &str = "cn=reader,dc=example,dc=com";
pub const PASSWORD: &str = "secret";

pub struct Slapd {
    pub url: String,
    child: Child,
    dir: PathBuf,
}

pub fn available() -> bool {
    PathBuf::from("/usr/sbin/slapd").exists() && PathBuf::from("/usr/sbin/slapadd").exists()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Slapd {
    /// The settings that make Tollgate's IdP this directory, as its service account.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("TOLLGATE_IDP_KIND", "ldap".into()),
            ("TOLLGATE_IDP_LDAP_URL", self.url.clone()),
            ("TOLLGATE_IDP_LDAP_BIND_DN", SERVICE_DN.into()),
            ("TOLLGATE_IDP_LDAP_BIND_PASSWORD", PASSWORD.into()),
            ("TOLLGATE_IDP_LDAP_BASE_DN", BASE.into()),
        ]
    }

    /// Starts slapd holding `ldif` (loaded offline, so even 100,000 entries take seconds).
    pub fn start(ldif: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("tollgate-slapd-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("slapd dir");
        let seed = dir.join("seed.ldif");
        std::fs::write(&seed, ldif).expect("write seed");
        Self::start_from(dir, &seed)
    }

    /// Starts slapd loaded from an LDIF file already written into `dir`.
    pub fn start_from(dir: PathBuf, seed: &Path) -> Self {
        let d = dir.display().to_string();
        std::fs::create_dir_all(format!("{d}/db")).expect("db dir");
        let config = format!(
            r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload refint
pidfile {d}/slapd.pid
database mdb
maxsize 2147483648
suffix "{BASE}"
rootdn "cn=admin,{BASE}"
rootpw {PASSWORD}
directory {d}/db
limits dn.exact="{SERVICE_DN}" size.soft=500 size.hard=500 size.prtotal=unlimited
index objectClass eq
index uid,mail,cn eq
index manager,member eq
index modifyTimestamp eq
access to attrs=userPassword
    by anonymous auth
    by * none
access to dn.subtree="ou=groups,{BASE}" attrs=member
    by dn.exact="{SERVICE_DN}" write
    by * read
access to *
    by * read
overlay refint
refint_attributes member manager
"#
        );
        let conf = format!("{d}/slapd.conf");
        std::fs::write(&conf, config).expect("write config");
        let seed = seed.display().to_string();
        let loaded = Command::new("/usr/sbin/slapadd")
            .args(["-q", "-f", &conf, "-l", &seed])
            .output()
            .expect("slapadd runs");
        assert!(
            loaded.status.success(),
            "slapadd: {}",
            String::from_utf8_lossy(&loaded.stderr)
        );
        let port = free_port();
        let url = format!("ldap://127.0.0.1:{port}");
        let child = Self::spawn(&dir, &url);
        let slapd = Self { url, child, dir };
        slapd.wait_listening();
        slapd
    }

    fn spawn(dir: &Path, url: &str) -> Child {
        let d = dir.display();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(format!("{d}/slapd.log"))
            .expect("log");
        Command::new("/usr/sbin/slapd")
            .args([
                "-f",
                &format!("{d}/slapd.conf"),
                "-h",
                &format!("{url}/"),
                "-d",
                "0",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("slapd starts")
    }

    fn wait_listening(&self) {
        let address = self.url.trim_start_matches("ldap://").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "slapd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// An outage: the server goes away (its data stays).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The outage is over: the server is back on the same address with the same data.
    pub fn resume(&mut self) {
        self.child = Self::spawn(&self.dir, &self.url);
        self.wait_listening();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("slapd.log")).unwrap_or_default()
    }

    /// A connection bound as the directory's administrator, to change it as its owners would.
    pub async fn admin(&self) -> ldap3::Ldap {
        let (conn, mut ldap) = ldap3::LdapConnAsync::new(&self.url)
            .await
            .expect("connect to slapd");
        ldap3::drive!(conn);
        ldap.simple_bind(&format!("cn=admin,{BASE}"), PASSWORD)
            .await
            .expect("bind")
            .success()
            .expect("admin bind");
        ldap
    }

    /// Adds entries written as LDIF (one entry each, as [`person`] and [`group`] write them),
    /// online, as the directory's administrator: they show up to the next sync as joiners.
    pub async fn add(&self, entries: &[String]) {
        let mut ldap = self.admin().await;
        for ldif in entries {
            let mut dn = String::new();
            let mut attrs: Vec<(String, std::collections::HashSet<String>)> = Vec::new();
            for line in ldif.lines() {
                let Some((name, value)) = line.split_once(": ") else {
                    continue;
                };
                if name == "dn" {
                    dn = value.to_string();
                } else {
                    match attrs.iter_mut().find(|(n, _)| n == name) {
                        Some((_, values)) => {
                            values.insert(value.to_string());
                        }
                        None => attrs.push((name.to_string(), [value.to_string()].into())),
                    }
                }
            }
            ldap.add(&dn, attrs)
                .await
                .expect("add")
                .success()
                .expect("added");
        }
    }

    /// The `member` values of group `cn`, as stored.
    pub async fn members(&self, cn: &str) -> Vec<String> {
        let (entries, _) = self
            .admin()
            .await
            .search(
                &format!("cn={cn},ou=groups,{BASE}"),
                ldap3::Scope::Base,
                "(objectClass=*)",
                vec!["member"],
            )
            .await
            .expect("search")
            .success()
            .expect("group found");
        entries
            .into_iter()
            .flat_map(|e| {
                ldap3::SearchEntry::construct(e)
                    .attrs
                    .remove("member")
                    .unwrap_or_default()
            })
            .collect()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A person entry; `manager` is a uid.
pub fn person(uid: &str, manager: Option<&str>, title: &str, department: &str) -> String {
    let mut entry = format!(
        "dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n\
         mail: {uid}@example.com\ntitle: {title}\ndepartmentNumber: {department}\nemployeeType: full-time\n"
    );
    if let Some(m) = manager {
        let _ = writeln!(entry, "manager: uid={m},ou=people,{BASE}");
    }
    entry
}

pub fn group(cn: &str, members: &[&str]) -> String {
    let mut entry = format!(
        "dn: cn={cn},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {cn}\nowner: uid=ceo,ou=people,{BASE}\n"
    );
    for m in members {
        let _ = writeln!(entry, "member: uid={m},ou=people,{BASE}");
    }
    entry
}

/// The base entries, the service and reader accounts, ceo → vp → dev, two groups, and
/// `extra` more people reporting to dev.
pub fn seed(extra: usize) -> String {
    let mut ldif = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: tollgate\nuserPassword: {PASSWORD}\n\n\
         dn: {READER_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\nuserPassword: {PASSWORD}\n\n"
    );
    ldif.push_str(&person("ceo", None, "CEO", "EXEC"));
    ldif.push('\n');
    ldif.push_str(&person("vp", Some("ceo"), "VP Engineering", "ENG"));
    ldif.push('\n');
    ldif.push_str(&person("dev", Some("vp"), "Engineer", "ENG"));
    ldif.push('\n');
    for i in 0..extra {
        ldif.push_str(&person(&format!("p{i:06}"), Some("dev"), "Engineer", "ENG"));
        ldif.push('\n');
    }
    ldif.push_str(&group("jira-admins", &["ceo"]));
    ldif.push('\n');
    ldif.push_str(&group("netsuite-users", &["ceo", "vp"]));
    ldif
}
