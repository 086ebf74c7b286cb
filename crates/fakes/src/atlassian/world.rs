//! The fake cloud's data: one site's issues, accounts, roles, groups and spaces.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

#[derive(Debug, Clone)]
pub struct FakeUser {
    pub account_id: String,
    pub email: String,
    pub display_name: String,
    pub active: bool,
    /// Whether the person's profile visibility lets apps see the email.
    pub email_visible: bool,
}

#[derive(Debug, Clone)]
pub struct FakeComment {
    pub id: String,
    /// The author's account id ([`APP_ACCOUNT`] for what Tollgate posts).
    pub author: String,
    /// ADF (Jira v3) or plain text (JSM).
    pub body: Value,
    pub public: bool,
    pub created: chrono::DateTime<chrono::Utc>,
    /// Comment properties (`EntityProperty`: `{key, value}`) set when it was written.
    pub properties: Vec<Value>,
}

/// The account Jira gives an installed app: what Tollgate's own comments are written as.
pub const APP_ACCOUNT: (&str, &str) = ("557058:0a1b2c3d-tollgate-app", "Tollgate");

impl FakeComment {
    /// The comment as Jira's REST API returns it with `expand=properties`.
    pub fn to_rest_expanded(&self, world: &World) -> Value {
        let mut rest = self.to_rest(world);
        rest["properties"] = json!(self.properties);
        rest
    }

    /// The comment as Jira's REST API returns it.
    pub fn to_rest(&self, world: &World) -> Value {
        let (name, kind) = if self.author == APP_ACCOUNT.0 {
            (APP_ACCOUNT.1.to_string(), "app")
        } else {
            let name = world
                .user(&self.author)
                .map_or_else(|| self.author.clone(), |u| u.display_name.clone());
            (name, "atlassian")
        };
        let created = self.created.format("%Y-%m-%dT%H:%M:%S%.3f%z").to_string();
        json!({
            "id": self.id,
            "author": {"accountId": self.author, "displayName": name, "accountType": kind, "active": true},
            "updateAuthor": {"accountId": self.author, "displayName": name},
            "body": self.body,
            "created": created,
            "updated": created,
            "jsdPublic": self.public,
        })
    }
}

#[derive(Debug, Clone)]
pub struct FakeIssue {
    pub id: String,
    pub key: String,
    pub project_key: String,
    pub status: String,
    pub reporter: String,
    pub summary: String,
    /// Custom fields (`customfield_…`) and anything else a test wants Jira to return.
    pub custom: serde_json::Map<String, Value>,
    pub comments: Vec<FakeComment>,
    pub participants: Vec<String>,
    /// JSM approvals as `ApprovalDTO`s.
    pub approvals: Vec<Value>,
    pub request_type_id: String,
    pub request_type_name: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub service_desk_id: String,
}

impl FakeIssue {
    /// The text of what Tollgate wrote on the issue, oldest first (people's comments left out).
    pub fn app_comments(&self) -> Vec<String> {
        self.comments
            .iter()
            .filter(|c| c.author == APP_ACCOUNT.0)
            .map(|c| tollgate::atlassian::adf::plain_text(&c.body))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct FakeTransition {
    pub id: String,
    pub name: String,
    pub to_status: String,
}

#[derive(Debug, Clone, Default)]
pub struct World {
    pub issues: BTreeMap<String, FakeIssue>,
    /// The workflow: each transition is available from every other status.
    pub transitions: Vec<FakeTransition>,
    pub users: Vec<FakeUser>,
    /// (project key, role id) → account ids and group ids.
    pub project_roles: BTreeMap<(String, u64), (BTreeSet<String>, BTreeSet<String>)>,
    /// Site groups by group id (one set: Jira and the Admin API see the same groups).
    pub groups: BTreeMap<String, BTreeSet<String>>,
    /// JSM customer organizations by id.
    pub organizations: BTreeMap<u64, BTreeSet<String>>,
    /// Confluence space roles: (id, display name).
    pub space_roles: Vec<(String, String)>,
    /// Space id → (principal id, role id).
    pub space_assignments: BTreeMap<u64, Vec<(String, String)>>,
    /// (account id, role, resource) product roles granted through the Admin API.
    pub product_roles: BTreeSet<(String, String, String)>,
    /// Webhooks Jira gave up on: (id, body, url, failure time in epoch ms), oldest first.
    pub failed_webhooks: Vec<(String, String, String, i64)>,
    /// SCIM directory users: (userName, atlassianAccountId).
    pub scim_users: Vec<(String, String)>,
    /// The organization and SCIM directory ids the Admin API answers for.
    pub org_id: String,
    /// The site's cloud id: product roles name it in their resource.
    pub cloud_id: String,
    pub scim_directory_id: String,
    /// Project role names by role id (roles are site-wide; a project uses some of them).
    pub role_names: BTreeMap<u64, String>,
    /// Site group names by group id.
    pub group_names: BTreeMap<String, String>,
    /// Confluence space keys by space id.
    pub space_keys: BTreeMap<u64, String>,
    /// JSM organization names by id.
    pub organization_names: BTreeMap<u64, String>,
    /// Groups the SCIM directory provisions (fed from the IdP): their display names.
    pub scim_groups: Vec<String>,
    /// The site's base URL, as `serverInfo` states it (set when the fake starts).
    pub base_url: String,
    /// Accounts holding the *Administer Jira* global permission.
    pub administrators: BTreeSet<String>,
    /// Overrides every listing's page size (tests set 1 to page through everything).
    pub page_size: Option<usize>,
    /// JSM request types by id: (service desk id, name). The sample desk `1` (project IT) has
    /// `12` *Request access* and `13` *Joiners, movers and leavers*.
    pub request_types: BTreeMap<String, (String, String)>,
    /// Accounts the organization manages (its verified domains): the user-management API
    /// disables these, and refuses the others.
    pub managed_accounts: BTreeSet<String>,
    /// When each account last used each product (`jira-software`, `confluence`, …), as the
    /// Admin API's last-active dates answer: a product never used is absent.
    pub last_active: BTreeMap<String, BTreeMap<String, chrono::NaiveDate>>,
    next_id: u64,
}

impl World {
    pub fn next_id(&mut self) -> String {
        self.next_id += 1;
        (10_000 + self.next_id).to_string()
    }

    /// The page size of a listing: the test's override, else the vendor's (`asked`, capped).
    pub fn page_size(&self, asked: Option<usize>, default: usize, max: usize) -> usize {
        self.page_size
            .unwrap_or_else(|| asked.unwrap_or(default).clamp(1, max))
    }

    pub fn user(&self, account_id: &str) -> Option<&FakeUser> {
        self.users.iter().find(|u| u.account_id == account_id)
    }

    /// A small site: a service desk project `IT` with a few people, roles, groups and a space.
    pub fn sample() -> Self {
        let mut world = World {
            org_id: "org-acme".into(),
            cloud_id: "acme-cloud".into(),
            scim_directory_id: "dir-acme".into(),
            request_types: BTreeMap::from([
                ("12".into(), ("1".into(), "Request access".into())),
                (
                    "13".into(),
                    ("1".into(), "Joiners, movers and leavers".into()),
                ),
            ]),
            ..World::default()
        };
        for (id, email, name, visible) in [
            (
                "5b10ac8d82e05b22cc7d4e01",
                "erin.evans@acme.io",
                "Erin Evans",
                true,
            ),
            (
                "5b10ac8d82e05b22cc7d4e02",
                "dan.diaz@acme.io",
                "Dan Diaz",
                true,
            ),
            (
                "5b10ac8d82e05b22cc7d4e03",
                "ola.olsen@acme.io",
                "Ola Olsen",
                false,
            ),
        ] {
            world.users.push(FakeUser {
                account_id: id.into(),
                email: email.into(),
                display_name: name.into(),
                active: true,
                email_visible: visible,
            });
        }
        world.transitions = vec![
            transition("11", "Start progress", "In Progress"),
            transition("21", "Approve", "Approved"),
            transition("31", "Decline", "Declined"),
            transition("41", "Resolve", "Done"),
            transition("51", "Cancel request", "Canceled"),
        ];
        world
            .project_roles
            .insert(("IT".into(), 10002), Default::default());
        world
            .project_roles
            .insert(("FIN".into(), 10002), Default::default());
        world.role_names.insert(10002, "Administrators".into());
        world.role_names.insert(10001, "Developers".into());
        world.groups.insert(
            "c1d2e3f4-0000-4000-8000-00000000a001".into(),
            BTreeSet::new(),
        );
        world.group_names.insert(
            "c1d2e3f4-0000-4000-8000-00000000a001".into(),
            "fin-project-admins".into(),
        );
        world.organizations.insert(7, BTreeSet::new());
        world.organization_names.insert(7, "Acme Finance".into());
        world.space_roles = vec![
            ("role-viewer".into(), "Viewer".into()),
            ("role-editor".into(), "Editor".into()),
            ("role-collaborator".into(), "Collaborator".into()),
            ("role-admin".into(), "Admin".into()),
        ];
        world.space_assignments.insert(98_305, Vec::new());
        world.space_keys.insert(98_305, "ENG".into());
        world.scim_users.push((
            "erin.evans@acme.io".into(),
            "5b10ac8d82e05b22cc7d4e01".into(),
        ));
        world.add_issue("IT-1", "5b10ac8d82e05b22cc7d4e01");
        world
    }

    /// Adds a site group by name; returns its id.
    pub fn add_group(&mut self, name: &str) -> String {
        let id = format!(
            "c1d2e3f4-0000-4000-8000-{:012}",
            self.group_names.len() + 0xb000
        );
        self.groups.insert(id.clone(), BTreeSet::new());
        self.group_names.insert(id.clone(), name.into());
        id
    }

    /// The id of the site group called `name`.
    pub fn group_id(&self, name: &str) -> Option<String> {
        self.group_names
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map(|(id, _)| id.clone())
    }

    /// `author` (account id, display name) writes `text` on issue `key`, as a person does in
    /// Jira; returns the `comment_created` webhook Jira then sends. Panics on an unknown issue
    /// (a test's mistake).
    pub fn comment_by(&mut self, key: &str, author: (&str, &str), text: &str) -> Value {
        let id = self.next_id();
        let comment = FakeComment {
            id,
            author: author.0.to_string(),
            body: tollgate::atlassian::adf::render(text),
            public: true,
            created: chrono::Utc::now(),
            properties: Vec::new(),
        };
        let mut rest = comment.to_rest(self);
        // The webhook carries the name the person had when they wrote.
        rest["author"]["displayName"] = json!(author.1);
        let issue = self.issues.get_mut(key).expect("the test added this issue");
        issue.comments.push(comment);
        json!({
            "timestamp": chrono::Utc::now().timestamp_millis(),
            "webhookEvent": "comment_created",
            "issue": {"id": issue.id, "key": key, "fields": {"summary": issue.summary}},
            "comment": rest,
        })
    }

    /// Adds a JSM request in project `IT`, waiting for approval.
    pub fn add_issue(&mut self, key: &str, reporter: &str) -> &mut FakeIssue {
        let id = self.next_id();
        let mut custom = serde_json::Map::new();
        custom.insert(
            "customfield_10050".into(),
            json!({"id": "10100", "value": "netsuite"}),
        );
        custom.insert("customfield_10052".into(), json!("14d"));
        self.issues.insert(
            key.to_string(),
            FakeIssue {
                id,
                key: key.into(),
                project_key: key.split('-').next().unwrap_or("IT").into(),
                status: "Waiting for approval".into(),
                reporter: reporter.into(),
                summary: "Access to NetSuite for quarter close".into(),
                custom,
                comments: Vec::new(),
                participants: Vec::new(),
                approvals: Vec::new(),
                request_type_id: "12".into(),
                request_type_name: "Request access".into(),
                created: chrono::Utc::now(),
                service_desk_id: "1".into(),
            },
        );
        self.issues.get_mut(key).expect("just inserted")
    }
}

fn transition(id: &str, name: &str, to: &str) -> FakeTransition {
    FakeTransition {
        id: id.into(),
        name: name.into(),
        to_status: to.into(),
    }
}
