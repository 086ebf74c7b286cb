//! A pushed user as a person of the org chart. Which attribute is the person's id is the
//! deployment's choice ([`PersonKey`]): it must not change while the person stays (Entra's
//! default `externalId` is the changeable `mailNickname`; docs/identity.md shows how to map the
//! object id instead).

use std::collections::BTreeMap;

use serde_json::Value;

use super::path::get_ci;
use super::resource::ENTERPRISE_SCHEMA;
use crate::orgchart::{Email, EmploymentType, Person, PersonId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonKey {
    ExternalId,
    UserName,
    /// The id Tollgate assigned to the SCIM resource.
    Id,
    /// The enterprise extension's `employeeNumber`.
    EmployeeNumber,
}

impl PersonKey {
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "externalId" => Ok(Self::ExternalId),
            "userName" => Ok(Self::UserName),
            "id" => Ok(Self::Id),
            "employeeNumber" => Ok(Self::EmployeeNumber),
            other => Err(format!(
                "`{other}` is not one of externalId, userName, id, employeeNumber"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ExternalId => "externalId",
            Self::UserName => "userName",
            Self::Id => "id",
            Self::EmployeeNumber => "employeeNumber",
        }
    }

    /// The person id of the user `id` whose resource is `user`; `None` when it lacks the
    /// attribute (it is stored, but no person until it has one).
    pub fn of(self, id: &str, user: &Value) -> Option<PersonId> {
        let object = user.as_object()?;
        let text = match self {
            Self::Id => Some(id),
            Self::ExternalId => get_ci(object, "externalId").and_then(Value::as_str),
            Self::UserName => get_ci(object, "userName").and_then(Value::as_str),
            Self::EmployeeNumber => get_ci(object, ENTERPRISE_SCHEMA)
                .and_then(Value::as_object)
                .and_then(|e| get_ci(e, "employeeNumber"))
                .and_then(Value::as_str),
        }?;
        let text = text.trim();
        (!text.is_empty()).then(|| PersonId(text.to_string()))
    }
}

/// Why a stored user is not a person of the chart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unmapped {
    #[error("it has no `{0}`, the attribute that is a person's id here")]
    NoKey(&'static str),
    #[error("it has no email address (neither in `emails` nor as its `userName`)")]
    NoEmail,
}

/// The user `id` as a person. `manager` finds the person id a manager reference names (the
/// SCIM id of another user, or what the IdP put there).
pub fn person(
    key: PersonKey,
    id: &str,
    user: &Value,
    manager: impl Fn(&str) -> Option<PersonId>,
) -> Result<Person, Unmapped> {
    let person_id = key.of(id, user).ok_or(Unmapped::NoKey(key.as_str()))?;
    let empty = serde_json::Map::new();
    let object = user.as_object().unwrap_or(&empty);
    let text = |name: &str| {
        get_ci(object, name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let email = primary(object, "emails")
        .and_then(|e| e.get("value").and_then(Value::as_str))
        .and_then(|e| Email::parse(e).ok())
        .or_else(|| text("userName").and_then(|u| Email::parse(&u).ok()))
        .ok_or(Unmapped::NoEmail)?;
    let name = get_ci(object, "name").and_then(Value::as_object);
    let name_part = |part: &str| {
        name.and_then(|n| get_ci(n, part))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let display_name = text("displayName")
        .or_else(|| name_part("formatted").map(str::to_string))
        .or_else(|| {
            let parts: Vec<&str> = [name_part("givenName"), name_part("familyName")]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
        .or_else(|| text("userName"))
        .unwrap_or_else(|| email.as_str().to_string());
    let enterprise = get_ci(object, ENTERPRISE_SCHEMA).and_then(Value::as_object);
    let extension = |name: &str| {
        enterprise
            .and_then(|e| get_ci(e, name))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let manager = enterprise
        .and_then(|e| get_ci(e, "manager"))
        .and_then(|m| m.get("value"))
        .and_then(Value::as_str)
        .filter(|m| !m.trim().is_empty())
        .and_then(|m| manager(m.trim()));
    let mut attributes = BTreeMap::new();
    for (attr, value) in [
        ("user_type", text("userType")),
        ("locale", text("locale")),
        ("timezone", text("timezone")),
        ("preferred_language", text("preferredLanguage")),
        ("employee_number", extension("employeeNumber")),
        ("division", extension("division")),
        ("organization", extension("organization")),
        ("scim_id", Some(id.to_string())),
    ] {
        if let Some(value) = value {
            attributes.insert(attr.to_string(), value);
        }
    }
    if let Some(address) = primary(object, "addresses") {
        for (attr, sub) in [("country", "country"), ("location", "locality")] {
            if let Some(v) = address
                .get(sub)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
            {
                attributes.insert(attr.to_string(), v.to_string());
            }
        }
    }
    Ok(Person {
        id: person_id,
        email,
        display_name,
        title: text("title"),
        department: extension("department"),
        cost_center: extension("costCenter"),
        manager,
        // Absent means active (RFC 7643: the provider decides; IdPs send it when false).
        active: get_ci(object, "active")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        employment_type: text("userType")
            .map_or(EmploymentType::FullTime, |t| EmploymentType::parse(&t)),
        atlassian_account_id: None,
        attributes,
    })
}

/// The element of a multi-valued attribute marked primary, else the first.
fn primary<'a>(object: &'a serde_json::Map<String, Value>, attr: &str) -> Option<&'a Value> {
    let items = get_ci(object, attr)?.as_array()?;
    items
        .iter()
        .find(|i| i.get("primary").and_then(Value::as_bool) == Some(true))
        .or_else(|| items.first())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entra_user_with_the_enterprise_extension() {
        let user = json!({
            "userName": "ada@acme.example",
            "externalId": "0f6c7e0a-oid",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "title": "Engineer",
            "userType": "Contractor",
            "emails": [{"value": "old@acme.example"}, {"value": "Ada@Acme.example", "primary": true}],
            "addresses": [{"type": "work", "country": "GB", "locality": "London"}],
            ENTERPRISE_SCHEMA: {"department": "Engineering", "costCenter": "CC-7", "manager": {"value": "scim-9"}},
        });
        let person = person(PersonKey::ExternalId, "scim-1", &user, |m| {
            (m == "scim-9").then(|| PersonId("boss-oid".into()))
        })
        .expect("a person");
        assert_eq!(person.id, PersonId("0f6c7e0a-oid".into()));
        assert_eq!(person.email.as_str(), "ada@acme.example", "the primary one");
        assert_eq!(person.display_name, "Ada Lovelace");
        assert_eq!(person.manager, Some(PersonId("boss-oid".into())));
        assert_eq!(person.department.as_deref(), Some("Engineering"));
        assert_eq!(person.cost_center.as_deref(), Some("CC-7"));
        assert_eq!(person.employment_type, EmploymentType::Contractor);
        assert_eq!(person.attributes["country"], "GB");
        assert_eq!(person.attributes["scim_id"], "scim-1");
        assert!(person.active);
    }

    #[test]
    fn a_user_without_its_key_or_an_email_is_no_person() {
        let no_key = json!({"userName": "ada@acme.example"});
        assert_eq!(
            person(PersonKey::ExternalId, "1", &no_key, |_| None),
            Err(Unmapped::NoKey("externalId"))
        );
        let by_name = person(PersonKey::UserName, "1", &no_key, |_| None).expect("userName");
        assert_eq!(by_name.id, PersonId("ada@acme.example".into()));
        let no_email = json!({"userName": "ada", "externalId": "e"});
        assert_eq!(
            person(PersonKey::ExternalId, "1", &no_email, |_| None),
            Err(Unmapped::NoEmail)
        );
        let inactive = json!({"userName": "a@x.io", "active": false});
        assert!(
            !person(PersonKey::Id, "1", &inactive, |_| None)
                .expect("person")
                .active
        );
    }
}
