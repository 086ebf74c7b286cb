//! In-memory lookups over one [`OrgSnapshot`]: by id, email, title, department and group, and
//! manager ↔ reports. Built once per snapshot; read by every routing decision.

use std::collections::HashMap;

use super::{AccountId, Email, Group, OrgSnapshot, Person, PersonId};

/// A person's position in the index. Only valid for the index that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonIdx(u32);

#[derive(Debug, Clone)]
struct IndexedGroup {
    group: Group,
    members: Vec<PersonIdx>,
    owners: Vec<PersonIdx>,
}

#[derive(Debug, Default)]
pub struct OrgIndex {
    people: Vec<Person>,
    manager: Vec<Option<PersonIdx>>,
    reports: Vec<Vec<PersonIdx>>,
    groups_of: Vec<Vec<u32>>,
    by_id: HashMap<PersonId, PersonIdx>,
    by_email: HashMap<Email, PersonIdx>,
    by_account: HashMap<AccountId, PersonIdx>,
    by_title: HashMap<String, Vec<PersonIdx>>,
    by_department: HashMap<String, Vec<PersonIdx>>,
    department_heads: HashMap<String, PersonIdx>,
    groups: Vec<IndexedGroup>,
    group_by_name: HashMap<String, u32>,
    problems: Vec<String>,
}

fn fold(text: &str) -> String {
    text.trim().to_lowercase()
}

impl OrgIndex {
    /// Builds the index. Inconsistencies (a duplicate email, a manager or member who is not in
    /// the snapshot, a manager cycle) never fail the build: they are kept as [`Self::problems`]
    /// and routing treats the reference as missing.
    pub fn build(snapshot: OrgSnapshot) -> Self {
        let OrgSnapshot {
            people,
            groups,
            departments,
        } = snapshot;
        let mut index = OrgIndex {
            by_id: HashMap::with_capacity(people.len()),
            by_email: HashMap::with_capacity(people.len()),
            ..Default::default()
        };
        for person in people {
            let idx = PersonIdx(index.people.len() as u32);
            if index.by_id.contains_key(&person.id) {
                index.problems.push(format!(
                    "person id `{}` appears twice; the first is kept",
                    person.id.0
                ));
                continue;
            }
            if index.by_email.contains_key(&person.email) {
                index.problems.push(format!(
                    "email {} belongs to two people; the first is kept",
                    person.email
                ));
                continue;
            }
            index.by_id.insert(person.id.clone(), idx);
            index.by_email.insert(person.email.clone(), idx);
            if let Some(account) = &person.atlassian_account_id {
                index.by_account.insert(account.clone(), idx);
            }
            if let Some(title) = &person.title {
                index.by_title.entry(fold(title)).or_default().push(idx);
            }
            if let Some(department) = &person.department {
                index
                    .by_department
                    .entry(fold(department))
                    .or_default()
                    .push(idx);
            }
            index.people.push(person);
        }

        let count = index.people.len();
        index.manager = vec![None; count];
        index.reports = vec![Vec::new(); count];
        index.groups_of = vec![Vec::new(); count];
        for (i, person) in index.people.iter().enumerate() {
            let Some(manager_id) = &person.manager else {
                continue;
            };
            match index.by_id.get(manager_id) {
                Some(&m) if m.0 as usize == i => index
                    .problems
                    .push(format!("{} is their own manager", person.email)),
                Some(&m) => {
                    index.manager[i] = Some(m);
                    index.reports[m.0 as usize].push(PersonIdx(i as u32));
                }
                None => index.problems.push(format!(
                    "{}'s manager `{}` is not in the organisation",
                    person.email, manager_id.0
                )),
            }
        }
        index.report_cycles();

        for group in groups {
            let resolve = |ids: &[PersonId], problems: &mut Vec<String>, role: &str| {
                ids.iter()
                    .filter_map(|id| {
                        let found = index.by_id.get(id).copied();
                        if found.is_none() {
                            problems.push(format!(
                                "group `{}` lists {role} `{}` who is not in the organisation",
                                group.name, id.0
                            ));
                        }
                        found
                    })
                    .collect::<Vec<_>>()
            };
            let mut problems = Vec::new();
            let members = resolve(&group.members, &mut problems, "member");
            let owners = resolve(&group.owners, &mut problems, "owner");
            index.problems.extend(problems);
            let gi = index.groups.len() as u32;
            if index.group_by_name.insert(fold(&group.name), gi).is_some() {
                index.problems.push(format!(
                    "group name `{}` appears twice; the last is kept",
                    group.name
                ));
            }
            if fold(&group.id) != fold(&group.name) {
                index.group_by_name.entry(fold(&group.id)).or_insert(gi);
            }
            for m in &members {
                index.groups_of[m.0 as usize].push(gi);
            }
            index.groups.push(IndexedGroup {
                group,
                members,
                owners,
            });
        }

        for department in departments {
            match index.by_id.get(&department.head) {
                Some(&head) => {
                    index.department_heads.insert(fold(&department.name), head);
                }
                None => index.problems.push(format!(
                    "department `{}` has head `{}` who is not in the organisation",
                    department.name, department.head.0
                )),
            }
        }
        index
    }

    /// Finds manager cycles once at build time so they can be reported; walks stay bounded
    /// anyway (see [`Self::manager_chain`]).
    fn report_cycles(&mut self) {
        // 0 = unvisited, 1 = on the current path, 2 = done.
        let mut state = vec![0u8; self.people.len()];
        for start in 0..self.people.len() {
            let mut path = Vec::new();
            let mut current = Some(start);
            while let Some(i) = current {
                match state[i] {
                    2 => break,
                    1 => {
                        let names: Vec<&str> = path
                            .iter()
                            .skip_while(|&&p| p != i)
                            .map(|&p: &usize| self.people[p].email.as_str())
                            .collect();
                        self.problems
                            .push(format!("manager cycle: {}", names.join(" → ")));
                        break;
                    }
                    _ => {
                        state[i] = 1;
                        path.push(i);
                        current = self.manager[i].map(|m| m.0 as usize);
                    }
                }
            }
            for p in path {
                state[p] = 2;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.people.len()
    }

    pub fn is_empty(&self) -> bool {
        self.people.is_empty()
    }

    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Inconsistencies found while building, for `check` and sync reports.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Everyone in the chart, in snapshot order.
    pub fn everyone(&self) -> impl Iterator<Item = PersonIdx> + '_ {
        (0..self.people.len()).map(|i| PersonIdx(i as u32))
    }

    pub fn person(&self, idx: PersonIdx) -> &Person {
        &self.people[idx.0 as usize]
    }

    pub fn by_email(&self, email: &Email) -> Option<PersonIdx> {
        self.by_email.get(email).copied()
    }

    /// The person whose source states this Atlassian account.
    pub fn by_account(&self, account: &AccountId) -> Option<PersonIdx> {
        self.by_account.get(account).copied()
    }

    pub fn by_id(&self, id: &PersonId) -> Option<PersonIdx> {
        self.by_id.get(id).copied()
    }

    /// Whom a request is for: by their IdP id when it is known (someone whose id is gone is
    /// gone, even if another person now has their old email), else by email.
    pub fn by_id_or_email(&self, id: Option<&PersonId>, email: Option<&str>) -> Option<PersonIdx> {
        match id {
            Some(id) => self.by_id(id),
            None => email
                .and_then(|e| Email::parse(e).ok())
                .and_then(|e| self.by_email(&e)),
        }
    }

    pub fn manager_of(&self, idx: PersonIdx) -> Option<PersonIdx> {
        self.manager[idx.0 as usize]
    }

    pub fn reports_of(&self, idx: PersonIdx) -> &[PersonIdx] {
        &self.reports[idx.0 as usize]
    }

    /// The managers above `idx`, nearest first. Stops at the top, at a dangling reference, or
    /// where the chain would revisit someone (a cycle), so it always ends.
    pub fn manager_chain(&self, idx: PersonIdx) -> ManagerChain<'_> {
        ManagerChain {
            index: self,
            current: idx,
            seen: vec![idx],
        }
    }

    pub fn with_title(&self, title: &str) -> &[PersonIdx] {
        self.by_title.get(&fold(title)).map_or(&[], Vec::as_slice)
    }

    pub fn in_department(&self, department: &str) -> &[PersonIdx] {
        self.by_department
            .get(&fold(department))
            .map_or(&[], Vec::as_slice)
    }

    pub fn has_group(&self, name: &str) -> bool {
        self.group_by_name.contains_key(&fold(name))
    }

    pub fn group_members(&self, name: &str) -> Option<&[PersonIdx]> {
        self.group(name).map(|g| g.members.as_slice())
    }

    /// Whether the person with IdP id `person` is in group `group`; `None` when either is
    /// unknown to the org chart.
    pub fn is_member_by_id(&self, group: &str, person: &PersonId) -> Option<bool> {
        let idx = self.by_id(person)?;
        Some(self.group_members(group)?.contains(&idx))
    }

    pub fn group_owners(&self, name: &str) -> Option<&[PersonIdx]> {
        self.group(name).map(|g| g.owners.as_slice())
    }

    fn group(&self, name: &str) -> Option<&IndexedGroup> {
        self.group_by_name
            .get(&fold(name))
            .map(|&gi| &self.groups[gi as usize])
    }

    /// Names of the groups `idx` belongs to.
    pub fn groups_of(&self, idx: PersonIdx) -> impl Iterator<Item = &str> {
        self.groups_of[idx.0 as usize]
            .iter()
            .map(|&gi| self.groups[gi as usize].group.name.as_str())
    }

    /// The head of `idx`'s department: the one the source names, else the highest person up
    /// `idx`'s manager chain who is still in that department.
    pub fn department_head(&self, idx: PersonIdx) -> Option<PersonIdx> {
        let department = fold(self.person(idx).department.as_deref()?);
        if let Some(&head) = self.department_heads.get(&department) {
            return Some(head);
        }
        let mut head = idx;
        for manager in self.manager_chain(idx) {
            match &self.person(manager).department {
                Some(d) if fold(d) == department => head = manager,
                _ => break,
            }
        }
        Some(head)
    }
}

pub struct ManagerChain<'a> {
    index: &'a OrgIndex,
    current: PersonIdx,
    seen: Vec<PersonIdx>,
}

impl Iterator for ManagerChain<'_> {
    type Item = PersonIdx;

    fn next(&mut self) -> Option<PersonIdx> {
        let next = self.index.manager_of(self.current)?;
        if self.seen.contains(&next) {
            return None;
        }
        self.seen.push(next);
        self.current = next;
        Some(next)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::orgchart::{Department, EmploymentType};

    pub fn person(email: &str, manager: Option<&str>, title: &str, department: &str) -> Person {
        Person {
            id: PersonId(email.to_string()),
            email: Email::parse(email).expect("valid"),
            display_name: email.split('@').next().unwrap_or_default().to_string(),
            title: Some(title.to_string()),
            department: Some(department.to_string()),
            cost_center: None,
            manager: manager.map(|m| PersonId(m.to_string())),
            active: true,
            employment_type: EmploymentType::FullTime,
            atlassian_account_id: None,
            attributes: Default::default(),
        }
    }

    fn email(index: &OrgIndex, idx: PersonIdx) -> &str {
        index.person(idx).email.as_str()
    }

    fn small_org() -> OrgIndex {
        OrgIndex::build(OrgSnapshot {
            people: vec![
                person("ceo@x.io", None, "CEO", "Executive"),
                person(
                    "cfo@x.io",
                    Some("ceo@x.io"),
                    "Chief Financial Officer",
                    "Finance",
                ),
                person("ctl@x.io", Some("cfo@x.io"), "Controller", "Finance"),
                person("acc@x.io", Some("ctl@x.io"), "Accountant", "Finance"),
                person("eng@x.io", Some("ceo@x.io"), "Engineer", "Engineering"),
            ],
            groups: vec![Group {
                id: "g1".into(),
                name: "Finance Owners".into(),
                members: vec![PersonId("ctl@x.io".into()), PersonId("ghost@x.io".into())],
                owners: vec![PersonId("cfo@x.io".into())],
            }],
            departments: vec![],
        })
    }

    #[test]
    fn looks_people_up_every_way() {
        let index = small_org();
        let acc = index
            .by_email(&Email::parse("ACC@x.io").expect("valid"))
            .expect("found");
        let chain: Vec<_> = index.manager_chain(acc).map(|i| email(&index, i)).collect();
        assert_eq!(chain, ["ctl@x.io", "cfo@x.io", "ceo@x.io"]);
        assert_eq!(index.with_title("chief financial officer").len(), 1);
        assert_eq!(index.in_department("finance").len(), 3);
        assert_eq!(
            index.group_members("finance owners").map(<[_]>::len),
            Some(1)
        );
        assert_eq!(
            index
                .groups_of(index.by_id(&PersonId("ctl@x.io".into())).expect("ctl"))
                .collect::<Vec<_>>(),
            ["Finance Owners"]
        );
        assert!(index.problems().iter().any(|p| p.contains("ghost@x.io")));
        let ceo = index.by_id(&PersonId("ceo@x.io".into())).expect("ceo");
        assert_eq!(index.reports_of(ceo).len(), 2);
    }

    #[test]
    fn department_head_is_derived_from_the_chain_or_stated() {
        let index = small_org();
        let acc = index.by_id(&PersonId("acc@x.io".into())).expect("acc");
        let head = index.department_head(acc).expect("head");
        assert_eq!(email(&index, head), "cfo@x.io");

        let mut snapshot = OrgSnapshot {
            people: vec![
                person("a@x.io", None, "A", "Ops"),
                person("b@x.io", Some("a@x.io"), "B", "Ops"),
            ],
            ..Default::default()
        };
        snapshot.departments.push(Department {
            name: "ops".into(),
            head: PersonId("b@x.io".into()),
        });
        let index = OrgIndex::build(snapshot);
        let a = index.by_id(&PersonId("a@x.io".into())).expect("a");
        assert_eq!(
            email(&index, index.department_head(a).expect("head")),
            "b@x.io"
        );
    }

    #[test]
    fn cycles_and_dangling_managers_end_walks_and_are_reported() {
        let index = OrgIndex::build(OrgSnapshot {
            people: vec![
                person("a@x.io", Some("c@x.io"), "A", "Ops"),
                person("b@x.io", Some("a@x.io"), "B", "Ops"),
                person("c@x.io", Some("b@x.io"), "C", "Ops"),
                person("d@x.io", Some("nobody@x.io"), "D", "Ops"),
                person("e@x.io", Some("e@x.io"), "E", "Ops"),
            ],
            ..Default::default()
        });
        let a = index.by_id(&PersonId("a@x.io".into())).expect("a");
        let chain: Vec<_> = index.manager_chain(a).map(|i| email(&index, i)).collect();
        assert_eq!(chain, ["c@x.io", "b@x.io"]);
        assert!(index.department_head(a).is_some());
        let d = index.by_id(&PersonId("d@x.io".into())).expect("d");
        assert_eq!(index.manager_of(d), None);
        let problems = index.problems().join("\n");
        assert!(problems.contains("manager cycle"), "{problems}");
        assert!(problems.contains("nobody@x.io"), "{problems}");
        assert!(problems.contains("their own manager"), "{problems}");
    }

    #[test]
    fn duplicates_keep_the_first() {
        let index = OrgIndex::build(OrgSnapshot {
            people: vec![
                person("a@x.io", None, "First", "Ops"),
                Person {
                    id: PersonId("other".into()),
                    ..person("A@x.io", None, "Second", "Ops")
                },
            ],
            ..Default::default()
        });
        assert_eq!(index.len(), 1);
        assert_eq!(index.with_title("first").len(), 1);
        assert!(index.with_title("second").is_empty());
    }
}
