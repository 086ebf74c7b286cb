//! The files as written: serde shapes of the YAML, with positions kept where a later check
//! needs to point at something. [`super::load`] validates these into the types routing uses.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub resources: Vec<ResourceYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceYaml {
    pub id: Spanned<String>,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub owner: Option<Spanned<OwnerYaml>>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub levels: Vec<LevelYaml>,
    pub max_duration: Option<Spanned<String>>,
    pub default_duration: Option<Spanned<String>>,
    #[serde(default)]
    pub permanent_allowed: bool,
    #[serde(default)]
    pub grants: Vec<Spanned<GrantYaml>>,
    /// `all_or_nothing` (default) or `keep_partial`.
    #[serde(default)]
    pub on_failure: crate::workflow::definition::FailurePolicy,
    /// How long a step that keeps failing on a vendor's outage is retried (default 24h).
    pub give_up_after: Option<Spanned<String>>,
    /// A requested grant of it goes to the new manager for re-approval when its holder moves.
    #[serde(default)]
    pub review_on_move: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum OwnerYaml {
    User(String),
    Group(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LevelYaml {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub grants: Vec<Spanned<GrantYaml>>,
    pub workflow: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum GrantYaml {
    IdpGroup(String),
    JiraGroup(String),
    JiraProjectRole { project: String, role: String },
    ConfluenceSpace(ConfluenceSpaceYaml),
    JsmOrganization(String),
    AtlassianProduct { product: String, role: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfluenceSpaceYaml {
    pub space: String,
    pub role: Option<String>,
    /// Not supported (Connect apps cannot write v1 space permissions); parsed only to explain.
    pub permissions: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeFile {
    pub intake: IntakeYaml,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeYaml {
    /// Site hosts (`acme.atlassian.net`) this mapping is for; empty means every site.
    #[serde(default)]
    pub sites: Vec<Spanned<String>>,
    pub request_types: Vec<String>,
    pub fields: IntakeFieldsYaml,
    /// The JSM workflow's transitions (or target statuses) for Tollgate's outcomes.
    #[serde(default)]
    pub transitions: TransitionsYaml,
    /// Resolutions that revoke an active grant at once (e.g. `Access revoked`).
    #[serde(default)]
    pub revoke_resolutions: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionsYaml {
    pub approved: Option<String>,
    pub declined: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntakeFieldsYaml {
    pub resource: String,
    pub level: Option<String>,
    pub duration: Option<String>,
    pub justification: Option<String>,
    pub on_behalf_of: Option<String>,
    pub approvers: Option<String>,
}

/// A file of birthright policies (`birthright:` at the top).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BirthrightFile {
    pub birthright: Vec<BirthrightYaml>,
}

/// A file whose top-level key is `inactive`: the inactive-account policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InactiveFile {
    pub inactive: Spanned<InactiveYaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InactiveYaml {
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    pub products: Vec<Spanned<InactiveRuleYaml>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InactiveRuleYaml {
    pub product: Spanned<String>,
    pub after: Option<Spanned<String>>,
    /// `review` or `end`.
    pub action: Spanned<String>,
    /// With `end`: how long before it ends the person is told (default 14d).
    pub notice: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BirthrightYaml {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: String,
    /// CEL over `person` (and `now`).
    pub when: Spanned<String>,
    pub grants: Spanned<Vec<Spanned<BirthrightGrantYaml>>>,
    /// `none` (the default) or `manager`.
    pub approval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BirthrightGrantYaml {
    pub resource: String,
    pub level: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsFile {
    pub defaults: DefaultsYaml,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DefaultsYaml {
    #[serde(default)]
    pub fallback_approvers: Option<Spanned<OneOrMany<SelectorYaml>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowYaml {
    pub workflow: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub applies_to: Spanned<AppliesToYaml>,
    #[serde(default)]
    pub auto_approve: Vec<RuleYaml>,
    #[serde(default)]
    pub deny: Vec<RuleYaml>,
    #[serde(default)]
    pub stages: Vec<StageYaml>,
    #[serde(default)]
    pub timeouts: TimeoutsYaml,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppliesToYaml {
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub resources: Vec<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub levels: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleYaml {
    pub name: String,
    pub when: Spanned<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageYaml {
    pub name: Spanned<String>,
    pub approvers: Spanned<OneOrMany<SelectorYaml>>,
    #[serde(default)]
    pub require: Option<Spanned<RequireYaml>>,
    pub when: Option<Spanned<String>>,
    pub fallback: Option<Spanned<OneOrMany<SelectorYaml>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsYaml {
    pub remind_after: Option<Spanned<String>>,
    pub escalate_after: Option<Spanned<String>>,
    pub decline_after: Option<Spanned<String>>,
}

/// `require: any | all | N`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RequireYaml {
    Count(i64),
    Word(String),
}

/// An approver selector: a bare name (`manager`, `department_head`, `resource_owner`) or a
/// one-key map (`{user: a@b.c}`, `{manager: {level: 2}}`, …).
#[derive(Debug)]
pub enum SelectorYaml {
    Named(String),
    Keyed(KeyedSelectorYaml),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeyedSelectorYaml {
    Manager(ManagerYaml),
    DepartmentHead(NoOptions),
    ResourceOwner(NoOptions),
    User(String),
    Group(String),
    Title(String),
    GroupOwner(String),
}

/// `{department_head: {}}`: the selector takes no options.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManagerYaml {
    #[serde(default = "one")]
    pub level: u32,
}

fn one() -> u32 {
    1
}

impl<'de> Deserialize<'de> for SelectorYaml {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SelectorVisitor;
        impl<'de> Visitor<'de> for SelectorVisitor {
            type Value = SelectorYaml;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an approver selector: manager, department_head, resource_owner, or a map such as {user: EMAIL}, {group: NAME}, {title: TEXT}, {group_owner: NAME}, {manager: {level: N}}")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SelectorYaml::Named(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                KeyedSelectorYaml::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(SelectorYaml::Keyed)
            }
        }
        deserializer.deserialize_any(SelectorVisitor)
    }
}

/// A single item or a list of them.
#[derive(Debug)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrManyVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("one item or a list of them")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::<E>::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|t| OneOrMany(vec![t]))
            }
        }
        deserializer.deserialize_any(OneOrManyVisitor(PhantomData))
    }
}

/// Just the top-level keys, to tell which kind of file this is.
pub type TopLevel = BTreeMap<String, serde::de::IgnoredAny>;
