//! LDAP and Active Directory: people (`inetOrgPerson` or AD users) with `manager`, department
//! and title; `groupOfNames`/AD groups with `member` and `owner`/`managedBy`; RFC 2696 paged
//! search; incremental by `modifyTimestamp` (OpenLDAP) or `uSNChanged` (AD); group writes by
//! modifying `member`.
//!
//! A person's id is their DN, normalized (lower case, no blanks after commas): `manager` and
//! `member` values are DNs, so no second lookup is needed. A rename shows up as one person
//! leaving and another joining.

pub use crate::config::idp::{Flavor, LdapConfig};
use std::collections::HashSet;
use std::time::Duration;

use ldap3::controls::{PagedResults, RawControl};
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry, ldap_escape,
};
use tokio::sync::Mutex;

use super::{Changes, Delta, Directory, GroupWriter, IdpError, Page};
use crate::change::Change;
use crate::orgchart::{Email, EmploymentType, Group, Person, PersonId};

const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";
/// LDAP result codes (RFC 4511 appendix A).
const RC_NO_SUCH_ATTRIBUTE: u32 = 16;
const RC_ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
const RC_NO_SUCH_OBJECT: u32 = 32;
const RC_INSUFFICIENT_ACCESS: u32 = 50;
const RC_UNWILLING: u32 = 53;
const RC_CONSTRAINT: u32 = 19;
/// What OpenLDAP answers when a `groupOfNames` would lose its last `member`.
const RC_OBJECT_CLASS_VIOLATION: u32 = 65;
const RC_SIZE_LIMIT: u32 = 4;
/// Clock skew allowed between us and the directory for `modifyTimestamp` cursors.
const SKEW_MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

#[derive(Debug)]
pub struct LdapDirectory {
    config: LdapConfig,
    /// One bound connection, reused: paged-search cookies only live on their connection. The
    /// number names the connection, so a cookie from another one (before a crash) is known
    /// to be stale without asking the server.
    session: Mutex<Option<(u64, Ldap)>>,
}

/// `uid=Dan, OU=People,dc=example` → `uid=dan,ou=people,dc=example`.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|rdn| rdn.trim().to_lowercase())
        .collect::<Vec<_>>()
        .join(",")
}

fn unavailable(e: LdapError) -> IdpError {
    IdpError::Unavailable(format!("LDAP: {e}"))
}

/// The cookie of a paged-results response control: `SEQUENCE { INTEGER size, OCTET STRING
/// cookie }`, parsed here so a malformed answer is an error rather than a panic.
fn paged_cookie(controls: &[ldap3::controls::Control]) -> Option<Vec<u8>> {
    let raw = controls
        .iter()
        .find(|c| c.1.ctype == PAGED_RESULTS_OID)?
        .1
        .val
        .as_deref()?;
    fn element(data: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
        let (&t, rest) = data.split_first()?;
        if t != tag {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first & 0x80 == 0 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            rest = &rest[n..];
            len
        };
        (rest.len() >= len).then(|| rest.split_at(len))
    }
    let (sequence, _) = element(raw, 0x30)?;
    let (_, after_size) = element(sequence, 0x02)?;
    let (cookie, _) = element(after_size, 0x04)?;
    Some(cookie.to_vec())
}

fn first<'a>(entry: &'a SearchEntry, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| {
        entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .and_then(|(_, v)| v.first())
            .map(String::as_str)
    })
}

fn all(entry: &SearchEntry, name: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().map(|dn| normalize_dn(dn)))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    People,
    Groups,
}

impl LdapDirectory {
    pub fn new(config: LdapConfig) -> Self {
        Self {
            config,
            session: Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<Ldap, IdpError> {
        let settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(10));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(unavailable)?;
        ldap3::drive!(conn);
        let bound = ldap
            .simple_bind(&self.config.bind_dn, self.config.bind_password.expose())
            .await
            .map_err(unavailable)?;
        if bound.rc != 0 {
            return Err(IdpError::Config(format!(
                "LDAP bind as {} refused (code {}): {}",
                self.config.bind_dn, bound.rc, bound.text
            )));
        }
        Ok(ldap)
    }

    /// The bound connection, reconnecting when it was lost.
    async fn session(&self) -> Result<tokio::sync::MutexGuard<'_, Option<(u64, Ldap)>>, IdpError> {
        let mut session = self.session.lock().await;
        if session.as_mut().is_none_or(|(_, l)| l.is_closed()) {
            let mut id = [0u8; 8];
            let _ = getrandom::fill(&mut id);
            *session = Some((u64::from_le_bytes(id), self.connect().await?));
        }
        Ok(session)
    }

    fn people_attrs() -> Vec<&'static str> {
        vec![
            "mail",
            "cn",
            "displayName",
            "title",
            "departmentNumber",
            "department",
            "manager",
            "employeeType",
            "employeeNumber",
            "userAccountControl",
        ]
    }

    fn filter(&self, phase: Phase, since: Option<&str>) -> String {
        let base = match phase {
            Phase::People => &self.config.people_filter,
            Phase::Groups => &self.config.group_filter,
        };
        match since {
            None => base.clone(),
            Some(cursor) => {
                let attribute = match self.config.flavor {
                    Flavor::OpenLdap => "modifyTimestamp",
                    Flavor::ActiveDirectory => "uSNChanged",
                };
                format!("(&{base}({attribute}>={}))", ldap_escape(cursor))
            }
        }
    }

    /// One page of `phase` from `cookie` (made on connection `connection`; a cookie of another
    /// connection is stale and the phase starts over). Returns the entries, the next cookie
    /// (empty: done) and the connection it belongs to.
    async fn search_page(
        &self,
        phase: Phase,
        since: Option<&str>,
        connection: u64,
        cookie: Vec<u8>,
    ) -> Result<(Vec<SearchEntry>, Vec<u8>, u64), IdpError> {
        let filter = self.filter(phase, since);
        let attrs = match phase {
            Phase::People => Self::people_attrs(),
            Phase::Groups => vec!["cn", "member", "owner", "managedBy"],
        };
        let mut session = self.session().await?;
        let (current, ldap) = session
            .as_mut()
            .ok_or_else(|| IdpError::Unavailable("LDAP: no connection".into()))?;
        let current = *current;
        let cookie = if current == connection {
            cookie
        } else {
            if !cookie.is_empty() {
                tracing::info!(
                    "LDAP paging cookie from an earlier connection; rereading this part"
                );
            }
            Vec::new()
        };
        let control: RawControl = PagedResults {
            size: self.config.page_size,
            cookie,
        }
        .into();
        let result = ldap
            .with_controls(vec![control])
            .search(&self.config.base_dn, Scope::Subtree, &filter, attrs)
            .await;
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                // Drop the connection: the next call reconnects.
                *session = None;
                return Err(unavailable(e));
            }
        };
        let ldap3::SearchResult(entries, outcome) = result;
        match outcome.rc {
            0 => {}
            RC_NO_SUCH_OBJECT => {
                return Err(IdpError::Config(format!(
                    "LDAP base DN {} does not exist",
                    self.config.base_dn
                )));
            }
            RC_SIZE_LIMIT => {
                return Err(IdpError::Config(format!(
                    "the LDAP server's size limit for {} stopped the paged search; allow paged \
                     results past it (OpenLDAP: `limits dn.exact=\"{}\" size.prtotal=unlimited`; \
                     AD: MaxPageSize at or above TOLLGATE_IDP_LDAP_PAGE_SIZE)",
                    self.config.bind_dn, self.config.bind_dn
                )));
            }
            rc => {
                return Err(IdpError::Unavailable(format!(
                    "LDAP search refused (code {rc}): {}",
                    outcome.text
                )));
            }
        }
        let cookie = paged_cookie(&outcome.ctrls).unwrap_or_default();
        Ok((
            entries.into_iter().map(SearchEntry::construct).collect(),
            cookie,
            current,
        ))
    }

    fn person(&self, entry: &SearchEntry) -> Option<Person> {
        let email = Email::parse(first(entry, &["mail"])?).ok()?;
        let disabled = first(entry, &["userAccountControl"])
            .and_then(|v| v.parse::<u32>().ok())
            .is_some_and(|flags| flags & 2 != 0);
        let mut attributes = std::collections::BTreeMap::new();
        if let Some(n) = first(entry, &["employeeNumber"]) {
            attributes.insert("employee_number".to_string(), n.to_string());
        }
        Some(Person {
            id: PersonId(normalize_dn(&entry.dn)),
            display_name: first(entry, &["displayName", "cn"])
                .unwrap_or(email.as_str())
                .to_string(),
            email,
            title: first(entry, &["title"]).map(str::to_string),
            department: first(entry, &["departmentNumber", "department"]).map(str::to_string),
            cost_center: None,
            manager: first(entry, &["manager"]).map(|dn| PersonId(normalize_dn(dn))),
            active: !disabled,
            employment_type: first(entry, &["employeeType"])
                .map(EmploymentType::parse)
                .unwrap_or(EmploymentType::FullTime),
            atlassian_account_id: None,
            attributes,
        })
    }

    fn group(&self, entry: &SearchEntry) -> Group {
        let mut owners = all(entry, "owner");
        owners.extend(all(entry, "managedBy"));
        let placeholder = normalize_dn(&self.config.empty_group_member);
        Group {
            id: normalize_dn(&entry.dn),
            name: first(entry, &["cn"]).unwrap_or(&entry.dn).to_string(),
            members: all(entry, "member")
                .into_iter()
                .filter(|dn| normalize_dn(dn) != placeholder)
                .map(PersonId)
                .collect(),
            owners: owners.into_iter().map(PersonId).collect(),
        }
    }

    /// Every entry of `phase` changed since `since`, through all pages.
    async fn search_all(&self, phase: Phase, since: &str) -> Result<Vec<SearchEntry>, IdpError> {
        let mut out = Vec::new();
        let (mut connection, mut cookie) = (0, Vec::new());
        loop {
            let (entries, next, on) = self
                .search_page(phase, Some(since), connection, cookie)
                .await?;
            out.extend(entries);
            if next.is_empty() {
                return Ok(out);
            }
            (connection, cookie) = (on, next);
        }
    }

    async fn group_dn(&self, name: &str) -> Result<String, IdpError> {
        let filter = format!("(&{}(cn={}))", self.config.group_filter, ldap_escape(name));
        let mut session = self.session().await?;
        let (_, ldap) = session
            .as_mut()
            .ok_or_else(|| IdpError::Unavailable("LDAP: no connection".into()))?;
        let ldap3::SearchResult(entries, _) = ldap
            .search(&self.config.base_dn, Scope::Subtree, &filter, vec!["cn"])
            .await
            .map_err(unavailable)?;
        match entries.len() {
            1 => Ok(entries
                .into_iter()
                .map(SearchEntry::construct)
                .map(|e| e.dn)
                .next()
                .unwrap_or_default()),
            0 => Err(IdpError::NotFound(format!("LDAP group `{name}`"))),
            n => Err(IdpError::Refused(format!(
                "{n} LDAP groups are named `{name}`"
            ))),
        }
    }
}

/// `phase:connection:cookie-hex`, the resume token stored with each staged page.
fn encode_cookie(phase: Phase, connection: u64, cookie: &[u8]) -> String {
    let hex: String = cookie.iter().map(|b| format!("{b:02x}")).collect();
    let phase = match phase {
        Phase::People => "people",
        Phase::Groups => "groups",
    };
    format!("{phase}:{connection:x}:{hex}")
}

fn decode_cookie(resume: Option<&str>) -> (Phase, u64, Vec<u8>) {
    let mut parts = resume.unwrap_or_default().splitn(3, ':');
    let phase = match parts.next() {
        Some("groups") => Phase::Groups,
        _ => Phase::People,
    };
    let connection = parts
        .next()
        .and_then(|c| u64::from_str_radix(c, 16).ok())
        .unwrap_or(0);
    let hex = parts.next().unwrap_or_default();
    let bytes = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    (phase, connection, bytes)
}

impl Directory for LdapDirectory {
    fn source(&self) -> String {
        format!(
            "ldap:{}/{}",
            self.config.url,
            normalize_dn(&self.config.base_dn)
        )
    }

    async fn start_cursor(&self) -> Result<String, IdpError> {
        match self.config.flavor {
            Flavor::OpenLdap => Ok((crate::clock::wall() - SKEW_MARGIN)
                .format("%Y%m%d%H%M%SZ")
                .to_string()),
            Flavor::ActiveDirectory => {
                let mut session = self.session().await?;
                let (_, ldap) = session
                    .as_mut()
                    .ok_or_else(|| IdpError::Unavailable("LDAP: no connection".into()))?;
                let ldap3::SearchResult(entries, _) = ldap
                    .search(
                        "",
                        Scope::Base,
                        "(objectClass=*)",
                        vec!["highestCommittedUSN"],
                    )
                    .await
                    .map_err(unavailable)?;
                entries
                    .into_iter()
                    .map(SearchEntry::construct)
                    .find_map(|e| first(&e, &["highestCommittedUSN"]).map(str::to_string))
                    .ok_or_else(|| IdpError::Refused("rootDSE has no highestCommittedUSN".into()))
            }
        }
    }

    async fn read_page(&self, resume: Option<&str>) -> Result<Page, IdpError> {
        // A cookie from a connection that is gone (a crash, a restart) cannot be used: the
        // staged pages are kept, and this part is read again from its start.
        let (phase, connection, cookie) = decode_cookie(resume);
        let (entries, next, on) = self.search_page(phase, None, connection, cookie).await?;
        let mut page = Page::default();
        match phase {
            Phase::People => page.people = entries.iter().filter_map(|e| self.person(e)).collect(),
            Phase::Groups => page.groups = entries.iter().map(|e| self.group(e)).collect(),
        }
        page.next = match (phase, next.is_empty()) {
            (_, false) => Some(encode_cookie(phase, on, &next)),
            (Phase::People, true) => Some(encode_cookie(Phase::Groups, 0, &[])),
            (Phase::Groups, true) => None,
        };
        Ok(page)
    }

    /// Adds and changes since the cursor. Removals are not visible this way; the periodic
    /// full sync takes them out.
    async fn changes_since(&self, cursor: &str) -> Result<Changes, IdpError> {
        let next_cursor = self.start_cursor().await?;
        let mut deltas = Vec::new();
        for entry in self.search_all(Phase::People, cursor).await? {
            if let Some(person) = self.person(&entry) {
                deltas.push(Delta::Person(person));
            }
        }
        for entry in self.search_all(Phase::Groups, cursor).await? {
            deltas.push(Delta::Group(self.group(&entry)));
        }
        Ok(Changes {
            deltas,
            cursor: next_cursor,
        })
    }
}

impl GroupWriter for LdapDirectory {
    async fn set_member(
        &self,
        group: &str,
        person: &PersonId,
        member: bool,
    ) -> Result<Change, IdpError> {
        let dn = self.group_dn(group).await?;
        let values = HashSet::from([person.0.as_str()]);
        let change = if member {
            Mod::Add("member", values.clone())
        } else {
            Mod::Delete("member", values.clone())
        };
        let mut session = self.session().await?;
        let (_, ldap) = session
            .as_mut()
            .ok_or_else(|| IdpError::Unavailable("LDAP: no connection".into()))?;
        let mut result = ldap.modify(&dn, vec![change]).await.map_err(unavailable)?;
        if !member && result.rc == RC_OBJECT_CLASS_VIOLATION {
            // The person is the group's last member, and a groupOfNames must keep one: the
            // placeholder goes in and the person out in one modify, so nobody sees the group
            // with both or neither.
            let placeholder = HashSet::from([self.config.empty_group_member.as_str()]);
            let swap = vec![
                Mod::Add("member", placeholder),
                Mod::Delete("member", values),
            ];
            result = ldap.modify(&dn, swap).await.map_err(unavailable)?;
        }
        match result.rc {
            0 => Ok(Change::Applied),
            RC_ATTRIBUTE_OR_VALUE_EXISTS if member => Ok(Change::AlreadyInPlace),
            RC_NO_SUCH_ATTRIBUTE if !member => Ok(Change::AlreadyInPlace),
            RC_INSUFFICIENT_ACCESS | RC_UNWILLING | RC_CONSTRAINT | RC_OBJECT_CLASS_VIOLATION => {
                Err(IdpError::GroupNotWritable {
                    group: group.to_string(),
                    reason: format!(
                        "the directory refused (code {}): {}",
                        result.rc, result.text
                    ),
                })
            }
            RC_NO_SUCH_OBJECT => Err(IdpError::NotFound(format!("LDAP group `{group}`"))),
            rc => Err(IdpError::Refused(format!(
                "changing `{group}` failed (code {rc}): {}",
                result.text
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_are_normalized() {
        assert_eq!(
            normalize_dn("uid=Dan, OU=People,dc=Example,dc=com"),
            "uid=dan,ou=people,dc=example,dc=com"
        );
    }

    #[test]
    fn paged_cookies_parse_without_panicking() {
        let control = |val: Vec<u8>| {
            ldap3::controls::Control(
                None,
                RawControl {
                    ctype: PAGED_RESULTS_OID.into(),
                    crit: false,
                    val: Some(val),
                },
            )
        };
        // SEQUENCE { INTEGER 0, OCTET STRING "ab" }
        let good = vec![0x30, 0x07, 0x02, 0x01, 0x00, 0x04, 0x02, b'a', b'b'];
        assert_eq!(paged_cookie(&[control(good)]), Some(b"ab".to_vec()));
        for bad in [
            vec![],
            vec![0x30],
            vec![0x30, 0x05, 0x02, 0x09],
            vec![0x04, 0x00],
        ] {
            assert_eq!(paged_cookie(&[control(bad)]), None);
        }
        assert_eq!(
            decode_cookie(Some(&encode_cookie(Phase::Groups, 77, b"\x01\xff"))),
            (Phase::Groups, 77, vec![1, 255])
        );
        assert_eq!(decode_cookie(None), (Phase::People, 0, vec![]));
    }
}
