//! The organisation: people, their managers, groups and group owners.
//!
//! A source (the static `org.yaml`, later the IdP connectors) produces an [`OrgSnapshot`];
//! [`OrgIndex`] turns one into the lookups routing needs. Both are plain data: no I/O here
//! except reading a file in [`file`].

pub mod file;
mod index;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use crate::ids::{AccountId, Email, PersonId};
/// A person for tests elsewhere in the crate.
#[cfg(test)]
pub(crate) use index::tests::person as test_person;
pub use index::{OrgIndex, PersonIdx};

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmploymentType {
    FullTime,
    PartTime,
    Contractor,
    Intern,
    Other(String),
}

impl EmploymentType {
    pub fn parse(text: &str) -> Self {
        match text.trim().to_lowercase().replace(['-', ' '], "_").as_str() {
            "full_time" | "fulltime" | "employee" => Self::FullTime,
            "part_time" | "parttime" => Self::PartTime,
            "contractor" | "contract" | "contingent" => Self::Contractor,
            "intern" => Self::Intern,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::FullTime => "full_time",
            Self::PartTime => "part_time",
            Self::Contractor => "contractor",
            Self::Intern => "intern",
            Self::Other(other) => other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    pub id: PersonId,
    pub email: Email,
    pub display_name: String,
    pub title: Option<String>,
    pub department: Option<String>,
    pub cost_center: Option<String>,
    /// The manager's id; it may name nobody in the snapshot (a dangling reference).
    pub manager: Option<PersonId>,
    pub active: bool,
    pub employment_type: EmploymentType,
    pub atlassian_account_id: Option<AccountId>,
    /// Anything else the source knows (location, level, …), available to conditions.
    pub attributes: BTreeMap<String, String>,
}

impl Person {
    /// An active, full-time person with nothing else known (a source fills in the rest).
    pub fn new(id: PersonId, email: Email, display_name: impl Into<String>) -> Self {
        Self {
            id,
            email,
            display_name: display_name.into(),
            title: None,
            department: None,
            cost_center: None,
            manager: None,
            active: true,
            employment_type: EmploymentType::FullTime,
            atlassian_account_id: None,
            attributes: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    pub name: String,
    pub members: Vec<PersonId>,
    pub owners: Vec<PersonId>,
}

/// A department whose head is stated by the source rather than derived from the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub name: String,
    pub head: PersonId,
}

/// One consistent picture of the organisation, as a source delivered it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgSnapshot {
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
    #[serde(default)]
    pub departments: Vec<Department>,
}

/// One page of a full read. `next` is where the read goes on (`None`: it is complete); it is
/// stored with the page, so a crash resumes there.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub people: Vec<Person>,
    pub groups: Vec<Group>,
    /// Department heads, where the source states them (org.yaml).
    pub departments: Vec<Department>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Person(Person),
    PersonGone(PersonId),
    Group(Group),
    GroupGone(String),
}

/// What changed since a cursor, and the cursor to ask from next time.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    pub deltas: Vec<Delta>,
    pub cursor: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_validated_and_lower_cased() {
        assert_eq!(
            Email::parse(" Ada@Acme.Example ").map(String::from),
            Ok("ada@acme.example".into())
        );
        for bad in ["", "ada", "@acme", "ada@", "a b@x.y", "a@b@c"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn employment_types_accept_common_spellings() {
        assert_eq!(EmploymentType::parse("Full-Time"), EmploymentType::FullTime);
        assert_eq!(
            EmploymentType::parse("contractor"),
            EmploymentType::Contractor
        );
        assert_eq!(
            EmploymentType::parse("Vendor").as_str(),
            "vendor",
            "unknown kinds are kept"
        );
    }
}
