//! Reading the workflows directory: every file parsed, every rule checked, every problem
//! reported with its position. Pure over the file contents ([`load_sources`]); only
//! [`load_dir`] touches the disk.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::birthright::{self, Approval, Entitlement};
use super::condition::Condition;
use super::definition::*;
use super::model::*;
use super::{inactive, products};
use crate::orgchart::{Email, OrgIndex};
use crate::yamlfile::{Diagnostic, Pos, Reporter, Severity, has_errors};

/// Everything loaded from a workflows directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Workflows {
    pub catalog: Catalog,
    pub workflows: Vec<Workflow>,
    pub intake: Vec<IntakeMapping>,
    /// Approvers of last resort when a stage and its own fallback leave too few.
    pub fallback_approvers: Vec<Selector>,
    /// Birthright policies: what people are due for who they are, in file order.
    pub birthright: Vec<birthright::Policy>,
    /// How long unused Atlassian product access may stay (`None`: no file says).
    pub inactive: Option<inactive::InactivePolicy>,
    /// A hash of the loaded files: every routing decision records the version that made it.
    pub version: String,
}

impl Workflows {
    pub fn workflow(&self, id: &str) -> Option<&Workflow> {
        self.workflows.iter().find(|w| w.id == id)
    }

    /// The one workflow that applies to `resource` at `level`: the level's own, else the one
    /// whose `applies_to` matches (the loader guarantees at most one), else the default.
    pub fn workflow_for(&self, resource: &Resource, level: Option<&str>) -> Option<&Workflow> {
        if let Some(own) = level
            .and_then(|l| resource.level(l))
            .and_then(|l| l.workflow.as_deref())
        {
            return self.workflow(own);
        }
        self.workflows
            .iter()
            .find(|w| w.applies_to.matches(resource, level))
            .or_else(|| self.workflows.iter().find(|w| w.applies_to.default))
    }

    /// The intake mapping for a site host, else the default one.
    pub fn intake_for(&self, site_host: &str) -> Option<&IntakeMapping> {
        self.intake
            .iter()
            .find(|m| m.sites.iter().any(|s| s.eq_ignore_ascii_case(site_host)))
            .or_else(|| self.intake.iter().find(|m| m.sites.is_empty()))
    }
}

#[derive(Debug)]
pub struct LoadOutcome {
    /// Present when there were no errors (warnings allowed).
    pub workflows: Option<Workflows>,
    pub diagnostics: Vec<Diagnostic>,
    /// An `org.yaml`-style file found among the sources, if any.
    pub org_file: Option<PathBuf>,
}

/// Reads every `*.yaml`/`*.yml` under `dir` (sorted, recursively) and loads them.
pub fn load_dir(dir: &Path, org: Option<&OrgIndex>) -> LoadOutcome {
    match read_sources(dir) {
        Ok(sources) => load_sources(&sources, org),
        Err(diagnostic) => LoadOutcome {
            workflows: None,
            diagnostics: vec![diagnostic],
            org_file: None,
        },
    }
}

/// The YAML files under `dir`, sorted so the version hash does not depend on directory order.
pub fn read_sources(dir: &Path) -> Result<Vec<(PathBuf, String)>, Diagnostic> {
    let problem = |message: String| Diagnostic {
        severity: Severity::Error,
        file: dir.to_path_buf(),
        pos: Pos::default(),
        message,
        snippet: None,
    };
    let mut paths = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = std::fs::read_dir(&current)
            .map_err(|e| problem(format!("cannot read directory {}: {e}", current.display())))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                paths.push(path);
            }
        }
    }
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            std::fs::read_to_string(&path)
                .map(|text| (path.clone(), text))
                .map_err(|e| problem(format!("cannot read {}: {e}", path.display())))
        })
        .collect()
}

/// Index of a file in the sources.
type FileNo = usize;

struct ResourcePart {
    file: FileNo,
    id: Spanned<String>,
    resource: Resource,
    levels: Vec<LevelRef>,
}

/// What each file held, before cross-file checks.
#[derive(Default)]
struct Parts {
    resources: Vec<ResourcePart>,
    workflows: Vec<(FileNo, WorkflowYaml, Workflow)>,
    intake: Vec<(FileNo, IntakeYaml, IntakeMapping)>,
    fallback: Option<Vec<Selector>>,
    selectors: Vec<(FileNo, Pos, Selector)>,
    birthright: Vec<PolicyPart>,
    inactive: Option<inactive::InactivePolicy>,
}

/// A birthright policy, with where its id and each of its grants were written.
struct PolicyPart {
    file: FileNo,
    id: Pos,
    grants: Vec<Pos>,
    policy: birthright::Policy,
}

struct LevelRef {
    id: String,
    workflow: Option<Spanned<String>>,
}

pub fn load_sources(sources: &[(PathBuf, String)], org: Option<&OrgIndex>) -> LoadOutcome {
    let mut diagnostics = Vec::new();
    let mut parts = Parts::default();
    let mut org_file = None;
    let mut hasher = Sha256::new();

    for (file_no, (path, text)) in sources.iter().enumerate() {
        hasher.update(
            path.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
        let mut report = Reporter::new(path, text, &mut diagnostics);
        let Some(top) = report.parse::<TopLevel>() else {
            continue;
        };
        let keys: Vec<&str> = top.keys().map(String::as_str).collect();
        match keys.as_slice() {
            ["resources"] => {
                if let Some(file) = report.parse::<CatalogFile>() {
                    for r in file.resources {
                        if let Some((resource, levels)) = convert_resource(&mut report, &r) {
                            parts.resources.push(ResourcePart {
                                file: file_no,
                                id: r.id,
                                resource,
                                levels,
                            });
                        }
                    }
                }
            }
            ["intake"] => {
                if let Some(file) = report.parse::<IntakeFile>() {
                    let mapping = convert_intake(&file.intake);
                    parts.intake.push((file_no, file.intake, mapping));
                }
            }
            ["birthright"] => {
                if let Some(file) = report.parse::<BirthrightFile>() {
                    for yaml in &file.birthright {
                        if let Some(part) = convert_policy(&mut report, file_no, yaml) {
                            parts.birthright.push(part);
                        }
                    }
                }
            }
            ["inactive"] => {
                if let Some(file) = report.parse::<InactiveFile>() {
                    let pos = Pos::of_spanned(&file.inactive);
                    let policy = convert_inactive(&mut report, &file.inactive.value);
                    if parts.inactive.is_some() {
                        report.error(pos, "the inactive-account policy is written in two files");
                    }
                    parts.inactive = policy.or(parts.inactive.take());
                }
            }
            ["defaults"] => {
                if let Some(file) = report.parse::<DefaultsFile>()
                    && let Some(spec) = &file.defaults.fallback_approvers {
                        let pos = Pos::of_spanned(spec);
                        let selectors = convert_selectors(&mut report, spec);
                        for s in &selectors {
                            parts.selectors.push((file_no, pos, s.clone()));
                        }
                        if parts.fallback.is_some() {
                            report.error(pos, "fallback approvers are set in two files");
                        }
                        parts.fallback = Some(selectors);
                    }
            }
            keys if keys.contains(&"workflow") => {
                if let Some(file) = report.parse::<WorkflowYaml>() {
                    let mut selectors = Vec::new();
                    let workflow = convert_workflow(&mut report, &file, &mut selectors);
                    // Checked against the org chart even when the workflow has other errors,
                    // so one run reports every problem.
                    parts
                        .selectors
                        .extend(selectors.into_iter().map(|(pos, s)| (file_no, pos, s)));
                    if let Some(workflow) = workflow {
                        parts.workflows.push((file_no, file, workflow));
                    }
                }
            }
            keys if keys
                .iter()
                .all(|k| ["people", "groups", "departments"].contains(k)) =>
            {
                org_file = Some(path.clone());
            }
            _ => report.error(
                Pos { line: 1, column: 1 },
                "unrecognised file: expected a top-level `resources` (catalog), `workflow`, `intake`, `defaults`, `birthright`, `inactive`, or `people`/`groups` (org chart)",
            ),
        }
    }

    let version = hex::encode(hasher.finalize())[..16].to_string();
    let workflows = cross_check(sources, parts, org, &mut diagnostics, version);
    LoadOutcome {
        workflows: workflows.filter(|_| !has_errors(&diagnostics)),
        diagnostics,
        org_file,
    }
}

fn duration(report: &mut Reporter, value: &Option<Spanned<String>>) -> Option<Duration> {
    let spanned = value.as_ref()?;
    match crate::duration::parse(&spanned.value) {
        Ok(d) if d.is_zero() => {
            report.error(
                Pos::of_spanned(spanned),
                "a duration must be longer than zero",
            );
            None
        }
        Ok(d) => Some(d),
        Err(message) => {
            report.error(Pos::of_spanned(spanned), message);
            None
        }
    }
}

fn convert_grant(report: &mut Reporter, grant: &Spanned<GrantYaml>) -> Option<GrantTarget> {
    let pos = Pos::of_spanned(grant);
    let nonempty = |report: &mut Reporter, what: &str, value: &str| {
        if value.trim().is_empty() {
            report.error(pos, format!("{what} must not be empty"));
            false
        } else {
            true
        }
    };
    Some(match &grant.value {
        GrantYaml::IdpGroup(group) => {
            nonempty(report, "idp_group", group).then_some(())?;
            GrantTarget::IdpGroup {
                group: group.clone(),
            }
        }
        GrantYaml::JiraGroup(group) => {
            nonempty(report, "jira_group", group).then_some(())?;
            GrantTarget::JiraGroup {
                group: group.clone(),
            }
        }
        GrantYaml::JiraProjectRole { project, role } => {
            (nonempty(report, "project", project) && nonempty(report, "role", role))
                .then_some(())?;
            GrantTarget::JiraProjectRole {
                project: project.clone(),
                role: role.clone(),
            }
        }
        GrantYaml::ConfluenceSpace(space) => {
            if space.permissions.is_some() {
                report.error(
                    pos,
                    "confluence_space `permissions` cannot be granted: Atlassian Connect apps may not write Confluence space permissions; use a space `role` (e.g. role: Collaborator) instead",
                );
                return None;
            }
            let Some(role) = &space.role else {
                report.error(
                    pos,
                    "confluence_space needs a `role` (e.g. role: Collaborator)",
                );
                return None;
            };
            (nonempty(report, "space", &space.space) && nonempty(report, "role", role))
                .then_some(())?;
            GrantTarget::ConfluenceSpace {
                space: space.space.clone(),
                role: role.clone(),
            }
        }
        GrantYaml::JsmOrganization(organization) => {
            nonempty(report, "jsm_organization", organization).then_some(())?;
            GrantTarget::JsmOrganization {
                organization: organization.clone(),
            }
        }
        GrantYaml::AtlassianProduct { product, role } => {
            // The site is named at grant time; any cloud id shows whether the pair is offered.
            if let Err(message) = crate::workflow::products::assignment(product, role, "site") {
                report.error(pos, message);
                return None;
            }
            GrantTarget::AtlassianProduct {
                product: product.clone(),
                role: role.clone(),
            }
        }
    })
}

/// The inactive-account policy as written, or `None` (with diagnostics) when any of it is wrong:
/// a rule half understood could end access nobody meant to.
fn convert_inactive(
    report: &mut Reporter,
    yaml: &InactiveYaml,
) -> Option<inactive::InactivePolicy> {
    use inactive::{Action, Exclusion, Rule};
    let before = report.diagnostics.len();
    let mut rules: Vec<Rule> = Vec::new();
    for spanned in &yaml.products {
        let rule = &spanned.value;
        let product = rule.product.value.trim();
        if products::roles(product).is_none() {
            report.error(
                Pos::of_spanned(&rule.product),
                format!(
                    "unknown Atlassian product `{product}`: one of {}",
                    products::products().collect::<Vec<_>>().join(", ")
                ),
            );
        }
        if rules.iter().any(|r| r.product == product) {
            report.error(
                Pos::of_spanned(&rule.product),
                format!("`{product}` has two rules"),
            );
        }
        let Some(after) = duration(report, &rule.after) else {
            if rule.after.is_none() {
                report.error(
                    Pos::of_spanned(spanned),
                    format!("`{product}` says no `after` (how long unused access may stay)"),
                );
            }
            continue;
        };
        let action = match rule.action.value.trim() {
            "review" => {
                if let Some(notice) = &rule.notice {
                    report.error(
                        Pos::of_spanned(notice),
                        "`notice` goes with `action: end` (a review has the lifecycle deadline)",
                    );
                }
                Action::Review
            }
            "end" => Action::End {
                notice: match &rule.notice {
                    Some(_) => duration(report, &rule.notice).unwrap_or_default(),
                    None => Duration::from_secs(14 * 86_400),
                },
            },
            other => {
                report.error(
                    Pos::of_spanned(&rule.action),
                    format!("action `{other}` is not one of: review, end"),
                );
                continue;
            }
        };
        rules.push(Rule {
            product: product.to_string(),
            after,
            action,
        });
    }
    let mut exclude = Vec::new();
    for spanned in &yaml.exclude {
        match Exclusion::parse(&spanned.value) {
            Ok(x) => exclude.push(x),
            Err(message) => report.error(Pos::of_spanned(spanned), message),
        }
    }
    (report.diagnostics.len() == before).then_some(inactive::InactivePolicy { rules, exclude })
}

fn convert_policy(
    report: &mut Reporter,
    file: FileNo,
    yaml: &BirthrightYaml,
) -> Option<PolicyPart> {
    let before = report.diagnostics.len();
    let id = yaml.id.value.trim();
    let id_pos = Pos::of_spanned(&yaml.id);
    if id.is_empty() || id.contains(char::is_whitespace) {
        report.error(
            id_pos,
            format!("birthright id `{id}` must be one word (letters, digits, - or _)"),
        );
    }
    let when = match Condition::compile_for_person(&yaml.when.value) {
        Ok(when) => Some(when),
        Err(message) => {
            report.error(Pos::of_spanned(&yaml.when), message);
            None
        }
    };
    let approval = match &yaml.approval {
        None => Approval::None,
        Some(spanned) => Approval::parse(spanned.value.trim()).unwrap_or_else(|| {
            report.error(
                Pos::of_spanned(spanned),
                format!("approval `{}` is not one of: none, manager", spanned.value),
            );
            Approval::None
        }),
    };
    if yaml.grants.value.is_empty() {
        report.error(
            Pos::of_spanned(&yaml.grants),
            format!("birthright `{id}` grants nothing"),
        );
    }
    let grants = yaml
        .grants
        .value
        .iter()
        .map(|g| Entitlement {
            resource: ResourceId(g.value.resource.trim().to_string()),
            level: g.value.level.as_ref().map(|l| l.trim().to_string()),
        })
        .collect();
    let when = when.filter(|_| report.diagnostics.len() == before)?;
    Some(PolicyPart {
        file,
        id: id_pos,
        grants: yaml.grants.value.iter().map(Pos::of_spanned).collect(),
        policy: birthright::Policy {
            id: id.to_string(),
            description: yaml.description.clone(),
            when,
            grants,
            approval,
        },
    })
}

fn convert_resource(report: &mut Reporter, r: &ResourceYaml) -> Option<(Resource, Vec<LevelRef>)> {
    let pos = Pos::of_spanned(&r.id);
    let before = report.diagnostics.len();
    let id = r.id.value.trim();
    if id.is_empty() || id.contains(char::is_whitespace) {
        report.error(
            pos,
            format!("resource id `{id}` must be one word (letters, digits, - or _)"),
        );
    }
    let owner = r.owner.as_ref().and_then(|o| match &o.value {
        OwnerYaml::User(email) => match Email::parse(email) {
            Ok(email) => Some(Owner::User(email)),
            Err(message) => {
                report.error(Pos::of_spanned(o), message);
                None
            }
        },
        OwnerYaml::Group(name) => Some(Owner::Group(name.clone())),
    });
    let max_duration = duration(report, &r.max_duration);
    let give_up_after = duration(report, &r.give_up_after)
        .unwrap_or(crate::workflow::definition::DEFAULT_GIVE_UP_AFTER);
    let default_duration = duration(report, &r.default_duration);
    if let (Some(max), Some(default)) = (max_duration, default_duration)
        && default > max
    {
        report.error(
            r.default_duration.as_ref().map_or(pos, Pos::of_spanned),
            format!(
                "default_duration {} is longer than max_duration {}",
                crate::duration::format(default),
                crate::duration::format(max)
            ),
        );
    }
    if !r.permanent_allowed && max_duration.is_none() && default_duration.is_none() {
        report.error(
            pos,
            format!("resource `{id}` needs a max_duration or default_duration, or permanent_allowed: true"),
        );
    }
    let grants: Vec<GrantTarget> = r
        .grants
        .iter()
        .filter_map(|g| convert_grant(report, g))
        .collect();
    let mut seen_levels = HashSet::new();
    let mut levels = Vec::new();
    let mut level_refs = Vec::new();
    for l in &r.levels {
        if !seen_levels.insert(l.id.value.clone()) {
            report.error(
                Pos::of_spanned(&l.id),
                format!("level `{}` is listed twice", l.id.value),
            );
        }
        let level_grants: Vec<GrantTarget> = l
            .grants
            .iter()
            .filter_map(|g| convert_grant(report, g))
            .collect();
        levels.push(Level {
            id: l.id.value.clone(),
            description: l.description.clone(),
            grants: level_grants,
            workflow: l.workflow.as_ref().map(|w| w.value.clone()),
        });
        level_refs.push(LevelRef {
            id: l.id.value.clone(),
            workflow: l.workflow.clone(),
        });
    }
    if grants.is_empty()
        && levels.iter().all(|l| l.grants.is_empty())
        && report.diagnostics.len() == before
    {
        report.error(pos, format!("resource `{id}` grants nothing: add `grants`"));
    }
    (report.diagnostics.len() == before).then(|| {
        (
            Resource {
                id: ResourceId(id.to_string()),
                name: r.name.clone(),
                description: r.description.clone(),
                owner,
                tags: r.tags.clone(),
                levels,
                max_duration,
                default_duration,
                permanent_allowed: r.permanent_allowed,
                grants,
                on_failure: r.on_failure,
                give_up_after,
                review_on_move: r.review_on_move,
            },
            level_refs,
        )
    })
}

fn convert_intake(i: &IntakeYaml) -> IntakeMapping {
    let field = |f: &Option<String>| f.as_ref().map(|s| FieldRef(s.clone()));
    IntakeMapping {
        sites: i
            .sites
            .iter()
            .map(|s| s.value.trim().to_lowercase())
            .collect(),
        request_types: i.request_types.clone(),
        fields: IntakeFields {
            resource: FieldRef(i.fields.resource.clone()),
            level: field(&i.fields.level),
            duration: field(&i.fields.duration),
            justification: field(&i.fields.justification),
            on_behalf_of: field(&i.fields.on_behalf_of),
            approvers: field(&i.fields.approvers),
        },
        approved_transition: i
            .transitions
            .approved
            .clone()
            .unwrap_or_else(|| "Approved".into()),
        declined_transition: i
            .transitions
            .declined
            .clone()
            .unwrap_or_else(|| "Declined".into()),
        revoke_resolutions: i.revoke_resolutions.clone(),
    }
}

fn convert_selectors(
    report: &mut Reporter,
    spec: &Spanned<OneOrMany<SelectorYaml>>,
) -> Vec<Selector> {
    let pos = Pos::of_spanned(spec);
    if spec.value.0.is_empty() {
        report.error(pos, "no approvers listed");
    }
    spec.value
        .0
        .iter()
        .filter_map(|s| {
            let selector = match s {
                SelectorYaml::Named(name) => match name.as_str() {
                    "manager" => Ok(Selector::Manager { level: 1 }),
                    "department_head" => Ok(Selector::DepartmentHead),
                    "resource_owner" => Ok(Selector::ResourceOwner),
                    other => Err(format!(
                        "unknown approver selector `{other}`: use manager, department_head, resource_owner, or {{user: …}}, {{group: …}}, {{title: …}}, {{group_owner: …}}"
                    )),
                },
                SelectorYaml::Keyed(k) => match k {
                    KeyedSelectorYaml::Manager(m) if m.level == 0 => {
                        Err("manager level starts at 1 (the direct manager)".into())
                    }
                    KeyedSelectorYaml::Manager(m) => Ok(Selector::Manager { level: m.level }),
                    KeyedSelectorYaml::DepartmentHead(_) => Ok(Selector::DepartmentHead),
                    KeyedSelectorYaml::ResourceOwner(_) => Ok(Selector::ResourceOwner),
                    KeyedSelectorYaml::User(email) => Email::parse(email).map(Selector::User),
                    KeyedSelectorYaml::Group(name) => Ok(Selector::Group(name.clone())),
                    KeyedSelectorYaml::Title(title) => Ok(Selector::Title(title.clone())),
                    KeyedSelectorYaml::GroupOwner(name) => Ok(Selector::GroupOwner(name.clone())),
                },
            };
            selector.map_err(|message| report.error(pos, message)).ok()
        })
        .collect()
}

fn condition(report: &mut Reporter, source: &Spanned<String>) -> Option<Condition> {
    Condition::compile(&source.value)
        .map_err(|message| report.error(Pos::of_spanned(source), message))
        .ok()
}

fn convert_workflow(
    report: &mut Reporter,
    w: &WorkflowYaml,
    selectors: &mut Vec<(Pos, Selector)>,
) -> Option<Workflow> {
    let before = report.diagnostics.len();
    let pos = Pos::of_spanned(&w.workflow);
    let applies = &w.applies_to.value;
    if applies.default
        && (!applies.resources.is_empty() || !applies.tags.is_empty() || !applies.levels.is_empty())
    {
        report.error(
            Pos::of_spanned(&w.applies_to),
            "`default: true` cannot be combined with resources, tags or levels",
        );
    }
    if !applies.default
        && applies.resources.is_empty()
        && applies.tags.is_empty()
        && applies.levels.is_empty()
    {
        report.error(
            Pos::of_spanned(&w.applies_to),
            "applies_to names nothing: list resources, tags or levels, or say `default: true`",
        );
    }
    let rules = |report: &mut Reporter, rules: &[RuleYaml]| -> Vec<Rule> {
        rules
            .iter()
            .filter_map(|r| {
                condition(report, &r.when).map(|condition| Rule {
                    name: r.name.clone(),
                    condition,
                    reason: r.reason.clone(),
                })
            })
            .collect()
    };
    let auto_approve = rules(report, &w.auto_approve);
    let deny = rules(report, &w.deny);

    let mut names = HashSet::new();
    let mut stages = Vec::new();
    for s in &w.stages {
        if !names.insert(s.name.value.clone()) {
            report.error(
                Pos::of_spanned(&s.name),
                format!("stage `{}` is listed twice", s.name.value),
            );
        }
        let require = match s.require.as_ref().map(|r| (&r.value, Pos::of_spanned(r))) {
            None => Require::Any,
            Some((RequireYaml::Word(word), _)) if word == "any" => Require::Any,
            Some((RequireYaml::Word(word), _)) if word == "all" => Require::All,
            Some((RequireYaml::Count(n), _)) if *n >= 1 && *n <= 1000 => {
                Require::AtLeast(*n as u32)
            }
            Some((other, pos)) => {
                report.error(
                    pos,
                    format!("require must be `any`, `all` or a number from 1, not {other:?}"),
                );
                Require::Any
            }
        };
        let approvers = convert_selectors(report, &s.approvers);
        let approvers_pos = Pos::of_spanned(&s.approvers);
        selectors.extend(approvers.iter().map(|a| (approvers_pos, a.clone())));
        let fallback = match &s.fallback {
            Some(f) => {
                let converted = convert_selectors(report, f);
                let pos = Pos::of_spanned(f);
                selectors.extend(converted.iter().map(|a| (pos, a.clone())));
                converted
            }
            None => Vec::new(),
        };
        let when = s.when.as_ref().and_then(|c| condition(report, c));
        stages.push(Stage {
            name: s.name.value.clone(),
            approvers,
            require,
            when,
            fallback,
        });
    }

    let remind = duration(report, &w.timeouts.remind_after);
    let escalate = duration(report, &w.timeouts.escalate_after);
    let decline = duration(report, &w.timeouts.decline_after);
    let ordered = [
        (remind, &w.timeouts.remind_after, "remind_after"),
        (escalate, &w.timeouts.escalate_after, "escalate_after"),
        (decline, &w.timeouts.decline_after, "decline_after"),
    ];
    for (i, (earlier, _, earlier_name)) in ordered.iter().enumerate() {
        for (later, later_spec, later_name) in &ordered[i + 1..] {
            if let (Some(a), Some(b), Some(spec)) = (earlier, later, later_spec)
                && b <= a
            {
                report.error(
                    Pos::of_spanned(spec),
                    format!("{later_name} must be later than {earlier_name}"),
                );
            }
        }
    }
    if w.stages.is_empty() {
        report.warning(
            pos,
            format!("workflow `{}` has no stages: every request it covers is approved without anyone's approval", w.workflow.value),
        );
    }
    (report.diagnostics[before..]
        .iter()
        .all(|d| d.severity != Severity::Error))
    .then(|| Workflow {
        id: w.workflow.value.clone(),
        description: w.description.clone(),
        applies_to: AppliesTo {
            default: applies.default,
            resources: applies.resources.iter().map(|r| r.value.clone()).collect(),
            tags: applies.tags.clone(),
            levels: applies.levels.clone(),
        },
        auto_approve,
        deny,
        stages,
        timeouts: Timeouts {
            remind_after: remind,
            escalate_after: escalate,
            decline_after: decline,
        },
    })
}

/// Checks that need every file: duplicate ids, references between files, overlapping
/// workflows, and (given an org chart) people and groups that do not exist.
fn cross_check(
    sources: &[(PathBuf, String)],
    parts: Parts,
    org: Option<&OrgIndex>,
    diagnostics: &mut Vec<Diagnostic>,
    version: String,
) -> Option<Workflows> {
    fn reporter<'a>(
        sources: &'a [(PathBuf, String)],
        diagnostics: &'a mut Vec<Diagnostic>,
        file: FileNo,
    ) -> Reporter<'a> {
        let (path, text) = &sources[file];
        Reporter::new(path, text, diagnostics)
    }

    let mut seen = HashSet::new();
    for part in &parts.resources {
        if !seen.insert(part.resource.id.0.clone()) {
            reporter(sources, diagnostics, part.file).error(
                Pos::of_spanned(&part.id),
                format!("resource `{}` is defined twice", part.resource.id),
            );
        }
    }
    let catalog = Catalog::new(parts.resources.iter().map(|p| p.resource.clone()).collect());

    let mut workflow_ids = HashSet::new();
    let mut defaults: Vec<&str> = Vec::new();
    for (file, yaml, workflow) in &parts.workflows {
        let mut report = reporter(sources, diagnostics, *file);
        let pos = Pos::of_spanned(&yaml.workflow);
        if !workflow_ids.insert(workflow.id.as_str()) {
            report.error(pos, format!("workflow `{}` is defined twice", workflow.id));
        }
        if workflow.applies_to.default {
            if let Some(first) = defaults.first() {
                report.error(
                    pos,
                    format!("workflow `{}` is a second default (`{first}` is the first): only one may be", workflow.id),
                );
            }
            defaults.push(&workflow.id);
        }
        let applies_pos = Pos::of_spanned(&yaml.applies_to);
        for r in &yaml.applies_to.value.resources {
            if catalog.get(&r.value).is_none() {
                report.error(
                    Pos::of_spanned(r),
                    format!("applies_to names unknown resource `{}`", r.value),
                );
            }
        }
        for tag in &workflow.applies_to.tags {
            if !catalog.resources().iter().any(|r| r.tags.contains(tag)) {
                report.warning(applies_pos, format!("no resource has tag `{tag}`"));
            }
        }
        for level in &workflow.applies_to.levels {
            if !catalog.resources().iter().any(|r| r.level(level).is_some()) {
                report.warning(applies_pos, format!("no resource has level `{level}`"));
            }
        }
    }

    for part in &parts.resources {
        let mut report = reporter(sources, diagnostics, part.file);
        let pos = Pos::of_spanned(&part.id);
        let resource = &part.resource;
        for level in &part.levels {
            if let Some(w) = &level.workflow
                && !workflow_ids.contains(w.value.as_str())
            {
                report.error(
                    Pos::of_spanned(w),
                    format!("level `{}` names unknown workflow `{}`", level.id, w.value),
                );
            }
        }
        // Every way the resource can be requested must be covered by exactly one workflow.
        let choices: Vec<Option<&LevelRef>> = if part.levels.is_empty() {
            vec![None]
        } else {
            part.levels.iter().map(Some).collect()
        };
        for level in choices {
            if level.is_some_and(|l| l.workflow.is_some()) {
                continue;
            }
            let level_id = level.map(|l| l.id.as_str());
            let matching: Vec<&str> = parts
                .workflows
                .iter()
                .filter(|(_, _, w)| w.applies_to.matches(resource, level_id))
                .map(|(_, _, w)| w.id.as_str())
                .collect();
            let what = match level_id {
                Some(l) => format!("resource `{}` at level `{l}`", resource.id),
                None => format!("resource `{}`", resource.id),
            };
            if matching.len() > 1 {
                report.error(
                    pos,
                    format!(
                        "{what} is covered by several workflows ({}): exactly one may apply",
                        matching.join(", ")
                    ),
                );
            } else if matching.is_empty() && defaults.is_empty() {
                report.error(
                    pos,
                    format!("no workflow applies to {what}, and there is no default workflow"),
                );
            }
        }
        let Some(org) = org else { continue };
        match &resource.owner {
            Some(Owner::User(email)) if org.by_email(email).is_none() => {
                report.error(pos, format!("owner {email} is not in the org chart"));
            }
            Some(Owner::Group(group)) if !org.has_group(group) => {
                report.error(
                    pos,
                    format!("owner group `{group}` is not in the org chart"),
                );
            }
            _ => {}
        }
        let all_grants = resource
            .grants
            .iter()
            .chain(resource.levels.iter().flat_map(|l| &l.grants));
        for grant in all_grants {
            if let GrantTarget::IdpGroup { group } = grant
                && !org.has_group(group)
            {
                report.warning(pos, format!("IdP group `{group}` is not in the org chart"));
            }
        }
    }

    if let Some(org) = org {
        for (file, pos, selector) in &parts.selectors {
            let mut report = reporter(sources, diagnostics, *file);
            match selector {
                Selector::User(email) if org.by_email(email).is_none() => {
                    report.error(*pos, format!("approver {email} is not in the org chart"));
                }
                Selector::Group(name) | Selector::GroupOwner(name) if !org.has_group(name) => {
                    report.error(*pos, format!("group `{name}` is not in the org chart"));
                }
                Selector::Title(title) if org.with_title(title).is_empty() => {
                    report.warning(
                        *pos,
                        format!("nobody in the org chart has the title \"{title}\""),
                    );
                }
                _ => {}
            }
        }
    }

    let mut default_intake = false;
    let mut sites = HashSet::new();
    let top = Pos { line: 1, column: 1 };
    for (file, yaml, mapping) in &parts.intake {
        let mut report = reporter(sources, diagnostics, *file);
        if mapping.sites.is_empty() {
            if default_intake {
                report.error(
                    top,
                    "a second default intake mapping: give one of them `sites`",
                );
            }
            default_intake = true;
        }
        for (site, spanned) in mapping.sites.iter().zip(&yaml.sites) {
            if !sites.insert(site.clone()) {
                report.error(
                    Pos::of_spanned(spanned),
                    format!("site `{site}` has two intake mappings"),
                );
            }
        }
        if mapping.request_types.is_empty() {
            report.error(top, "intake lists no request_types");
        }
    }

    let mut policy_ids = HashSet::new();
    for part in &parts.birthright {
        let mut report = reporter(sources, diagnostics, part.file);
        if !policy_ids.insert(part.policy.id.as_str()) {
            report.error(
                part.id,
                format!("birthright `{}` is defined twice", part.policy.id),
            );
        }
        for (entitlement, pos) in part.policy.grants.iter().zip(&part.grants) {
            if let Err(message) = entitled(&catalog, entitlement) {
                report.error(*pos, message);
            }
        }
    }

    Some(Workflows {
        catalog,
        workflows: parts.workflows.into_iter().map(|(_, _, w)| w).collect(),
        intake: parts.intake.into_iter().map(|(_, _, m)| m).collect(),
        fallback_approvers: parts.fallback.unwrap_or_default(),
        birthright: parts.birthright.into_iter().map(|p| p.policy).collect(),
        inactive: parts.inactive,
        version,
    })
}

/// Whether the catalog has what a birthright grant names: the resource, and a level exactly
/// when the resource has levels (the rule a request's level follows).
fn entitled(catalog: &Catalog, entitlement: &Entitlement) -> Result<(), String> {
    let resource = &entitlement.resource;
    let Some(found) = catalog.get(resource) else {
        return Err(format!("birthright grants unknown resource `{resource}`"));
    };
    super::route::check_level(found, entitlement.level.as_deref())
        .map(|_| ())
        .map_err(|e| e.to_string())
}
