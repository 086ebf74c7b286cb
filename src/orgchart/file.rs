//! The static org chart source: `org.yaml`, people and groups written by hand, managers named by
//! email. Documented in `docs/workflows.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::{Department, Email, EmploymentType, Group, OrgSnapshot, Person, PersonId};
use crate::yamlfile::{Diagnostic, Pos, Reporter};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgFile {
    #[serde(default)]
    people: Vec<PersonYaml>,
    #[serde(default)]
    groups: Vec<GroupYaml>,
    #[serde(default)]
    departments: Vec<DepartmentYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PersonYaml {
    email: Spanned<String>,
    id: Option<String>,
    name: Option<String>,
    title: Option<String>,
    department: Option<String>,
    cost_center: Option<String>,
    manager: Option<Spanned<String>>,
    #[serde(default = "yes")]
    active: bool,
    employment_type: Option<String>,
    atlassian_account_id: Option<String>,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupYaml {
    name: Spanned<String>,
    id: Option<String>,
    #[serde(default)]
    members: Vec<Spanned<String>>,
    #[serde(default)]
    owners: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentYaml {
    name: String,
    head: Spanned<String>,
}

/// Reads and checks `org.yaml`. Problems that make the file unusable are errors; references to
/// people who are not in the file are warnings (an org chart is never perfectly clean, and
/// routing copes with them).
pub fn parse(path: &Path, text: &str) -> (Option<OrgSnapshot>, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut report = Reporter::new(path, text, &mut diagnostics);
    let Some(file) = report.parse::<OrgFile>() else {
        return (None, diagnostics);
    };

    let mut ids_by_email: HashMap<Email, PersonId> = HashMap::new();
    let mut people = Vec::with_capacity(file.people.len());
    let mut managers = Vec::with_capacity(file.people.len());
    for p in file.people {
        let email = match Email::parse(&p.email.value) {
            Ok(email) => email,
            Err(message) => {
                report.error(Pos::of_spanned(&p.email), message);
                continue;
            }
        };
        if ids_by_email.contains_key(&email) {
            report.error(
                Pos::of_spanned(&p.email),
                format!("{email} is listed twice"),
            );
            continue;
        }
        let id = PersonId(p.id.unwrap_or_else(|| email.as_str().to_string()));
        ids_by_email.insert(email.clone(), id.clone());
        managers.push(p.manager);
        people.push(Person {
            id,
            display_name: p.name.unwrap_or_else(|| email.as_str().to_string()),
            email,
            title: p.title,
            department: p.department,
            cost_center: p.cost_center,
            manager: None,
            active: p.active,
            employment_type: p
                .employment_type
                .as_deref()
                .map_or(EmploymentType::FullTime, EmploymentType::parse),
            atlassian_account_id: p.atlassian_account_id.map(super::AccountId),
            attributes: p.attributes,
        });
    }

    let mut resolve = |reference: &Spanned<String>, what: &str| -> Option<PersonId> {
        match Email::parse(&reference.value) {
            Ok(email) => match ids_by_email.get(&email) {
                Some(id) => Some(id.clone()),
                None => {
                    report.warning(
                        Pos::of_spanned(reference),
                        format!("{what} {email} is not among the people in this file"),
                    );
                    // Kept as a dangling reference: the index reports it, routing skips it.
                    Some(PersonId(email.as_str().to_string()))
                }
            },
            Err(message) => {
                report.error(Pos::of_spanned(reference), message);
                None
            }
        }
    };

    for (person, manager) in people.iter_mut().zip(&managers) {
        if let Some(manager) = manager {
            person.manager = resolve(manager, "manager");
        }
    }
    let groups = file
        .groups
        .into_iter()
        .map(|g| Group {
            id: g.id.unwrap_or_else(|| g.name.value.clone()),
            members: g
                .members
                .iter()
                .filter_map(|m| resolve(m, "member"))
                .collect(),
            owners: g
                .owners
                .iter()
                .filter_map(|o| resolve(o, "owner"))
                .collect(),
            name: g.name.value,
        })
        .collect();
    let departments = file
        .departments
        .into_iter()
        .filter_map(|d| {
            resolve(&d.head, "department head").map(|head| Department { name: d.name, head })
        })
        .collect();
    let snapshot = OrgSnapshot {
        people,
        groups,
        departments,
    };
    (Some(snapshot), diagnostics)
}

/// Reads `org.yaml` from disk; `Err` carries every problem when the file cannot be used.
pub fn load(path: &Path) -> Result<(OrgSnapshot, Vec<Diagnostic>), Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            severity: crate::yamlfile::Severity::Error,
            file: path.to_path_buf(),
            pos: Pos::default(),
            message: format!("cannot read the org chart: {e}"),
            snippet: None,
        }]
    })?;
    let (snapshot, diagnostics) = parse(path, &text);
    match snapshot {
        Some(snapshot) if !crate::yamlfile::has_errors(&diagnostics) => Ok((snapshot, diagnostics)),
        _ => Err(diagnostics),
    }
}

/// A snapshot in `org.yaml`'s own shape (people named by email), for `tollgate org show`:
/// what a sync stored can be read, diffed, or used as an `org.yaml` itself. A reference to
/// someone the snapshot does not hold has no email to name them by and is left out.
#[derive(Debug, Serialize)]
pub struct OrgFileOut {
    people: Vec<PersonOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<GroupOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    departments: Vec<DepartmentOut>,
}

#[derive(Debug, Serialize)]
struct PersonOut {
    email: String,
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    department: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cost_center: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    manager: Option<String>,
    active: bool,
    employment_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    atlassian_account_id: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attributes: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct GroupOut {
    name: String,
    id: String,
    members: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    owners: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DepartmentOut {
    name: String,
    head: String,
}

pub fn render(snapshot: &OrgSnapshot) -> OrgFileOut {
    let emails: HashMap<&PersonId, &str> = snapshot
        .people
        .iter()
        .map(|p| (&p.id, p.email.as_str()))
        .collect();
    let email = |id: &PersonId| emails.get(id).map(|e| e.to_string());
    OrgFileOut {
        people: snapshot
            .people
            .iter()
            .map(|p| PersonOut {
                email: p.email.as_str().to_string(),
                id: p.id.0.clone(),
                name: p.display_name.clone(),
                title: p.title.clone(),
                department: p.department.clone(),
                cost_center: p.cost_center.clone(),
                manager: p.manager.as_ref().and_then(email),
                active: p.active,
                employment_type: p.employment_type.as_str().to_string(),
                atlassian_account_id: p.atlassian_account_id.as_ref().map(|a| a.0.clone()),
                attributes: p.attributes.clone(),
            })
            .collect(),
        groups: snapshot
            .groups
            .iter()
            .map(|g| GroupOut {
                name: g.name.clone(),
                id: g.id.clone(),
                members: g.members.iter().filter_map(email).collect(),
                owners: g.owners.iter().filter_map(email).collect(),
            })
            .collect(),
        departments: snapshot
            .departments
            .iter()
            .filter_map(|d| {
                Some(DepartmentOut {
                    name: d.name.clone(),
                    head: email(&d.head)?,
                })
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORG: &str = "\
people:
  - email: Ceo@Acme.Example
    name: Grace
    title: CEO
    department: Executive
  - email: eng@acme.example
    id: okta-123
    manager: ceo@acme.example
    title: Engineer
    employment_type: contractor
    active: false
    attributes: { location: Berlin }
  - email: lost@acme.example
    manager: gone@acme.example
groups:
  - name: Engineers
    members: [eng@acme.example, nobody@acme.example]
    owners: [ceo@acme.example]
departments:
  - name: Executive
    head: ceo@acme.example
";

    #[test]
    fn parses_people_groups_and_references() {
        let (snapshot, diagnostics) = parse(Path::new("org.yaml"), ORG);
        let snapshot = snapshot.expect("usable");
        assert_eq!(snapshot.people.len(), 3);
        let eng = &snapshot.people[1];
        assert_eq!(eng.id, PersonId("okta-123".into()));
        assert_eq!(eng.manager, Some(PersonId("ceo@acme.example".into())));
        assert!(!eng.active);
        assert_eq!(eng.employment_type, EmploymentType::Contractor);
        assert_eq!(eng.attributes["location"], "Berlin");
        assert_eq!(
            snapshot.groups[0].members,
            [
                PersonId("okta-123".into()),
                PersonId("nobody@acme.example".into())
            ]
        );
        assert_eq!(snapshot.departments[0].head.0, "ceo@acme.example");
        let warnings: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(
            warnings[0].starts_with("org.yaml:14:14: warning: manager gone@acme.example"),
            "{warnings:?}"
        );
        assert!(warnings[1].contains("member nobody@acme.example"));
    }

    #[test]
    fn bad_emails_and_duplicates_are_errors() {
        let text = "people:\n  - email: not-an-email\n  - email: a@x.io\n  - email: A@x.io\n";
        let (_, diagnostics) = parse(Path::new("org.yaml"), text);
        let rendered: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
        assert!(
            rendered[0].starts_with("org.yaml:2:12: error:"),
            "{rendered:?}"
        );
        assert!(rendered[1].contains("listed twice"), "{rendered:?}");
    }

    #[test]
    fn a_rendered_snapshot_reads_back_as_the_same_org_chart() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/workflows/org.yaml"));
        let (snapshot, _) = load(path).expect("the shipped org.yaml");
        let yaml = serde_saphyr::to_string(&render(&snapshot)).expect("rendered");
        let (again, diagnostics) = parse(Path::new("shown.yaml"), &yaml);
        assert!(diagnostics.is_empty(), "{diagnostics:?}\n{yaml}");
        assert_eq!(again, Some(snapshot));
    }
}
