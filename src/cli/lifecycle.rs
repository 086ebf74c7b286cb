//! `tollgate lifecycle plan`: what the birthright policies give each person of the org chart,
//! by which policy, and what a lifecycle run would do about it against the birthright they
//! hold, without changing anything; `runs` and `release` for the runs themselves.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Format, org_and_workflows};
use crate::identity::run::{Held, changes};
use crate::orgchart::{Email, OrgIndex, OrgSnapshot, PersonId, PersonIdx};
use crate::store::org::SnapshotInfo;
use crate::workflow::birthright::{self, Approval, Due, Entitlement};

#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Workflows directory [default: TOLLGATE_WORKFLOWS_DIR, else ./workflows].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Org chart [default: the synced one in the configured database, else DIR/org.yaml].
    #[arg(long, value_name = "ORG.yaml")]
    pub org: Option<PathBuf>,
    /// Only this person (by email).
    #[arg(long, value_name = "EMAIL")]
    pub person: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// One person's part of the plan.
#[derive(Debug, Serialize)]
struct PersonPlan {
    email: String,
    name: String,
    person_id: String,
    active: bool,
    due: Vec<Due>,
    /// What a lifecycle run for them would do now, against the birthright they hold: grant,
    /// leave for the manager's approval, end after the grace period, keep from ending.
    grant: Vec<Entitlement>,
    needs_approval: Vec<Entitlement>,
    end: Vec<Entitlement>,
    keep: Vec<Entitlement>,
    /// Policies whose condition could not be judged for this person.
    problems: Vec<String>,
}

/// The birthright people hold, by person (what the dry run compares with what is due).
pub type HeldBirthright = HashMap<PersonId, Vec<Held>>;

/// Exit status: 0 when a plan was made, 1 when the inputs or the files are invalid.
pub fn plan(
    args: &PlanArgs,
    default_dir: &Path,
    synced: Option<(SnapshotInfo, OrgSnapshot)>,
    held: &HeldBirthright,
    now: DateTime<Utc>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<i32> {
    let dir = args.dir.as_deref().unwrap_or(default_dir);
    let (org, workflows) = match org_and_workflows(dir, args.org.as_deref(), synced, err)? {
        Ok(loaded) => loaded,
        Err(message) => {
            writeln!(err, "tollgate: {message}")?;
            return Ok(1);
        }
    };
    let people: Vec<PersonIdx> = match &args.person {
        None => org.everyone().collect(),
        Some(text) => match Email::parse(text).map(|e| org.by_email(&e)) {
            Ok(Some(idx)) => vec![idx],
            Ok(None) => {
                writeln!(err, "tollgate: {text} is not in the org chart")?;
                return Ok(1);
            }
            Err(message) => {
                writeln!(err, "tollgate: --person: {message}")?;
                return Ok(1);
            }
        },
    };
    let plans: Vec<PersonPlan> = people
        .into_iter()
        .map(|idx| person_plan(&workflows.birthright, &org, idx, held, now))
        .collect();
    match args.format {
        Format::Json => {
            let shown = serde_json::json!({
                "policies": workflows.birthright.iter().map(|p| &p.id).collect::<Vec<_>>(),
                "people": plans,
            });
            serde_json::to_writer_pretty(&mut *out, &shown).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&plans, workflows.birthright.len(), out)?,
    }
    Ok(0)
}

fn person_plan(
    policies: &[birthright::Policy],
    org: &OrgIndex,
    idx: PersonIdx,
    held: &HeldBirthright,
    now: DateTime<Utc>,
) -> PersonPlan {
    let person = org.person(idx);
    let (due, problems) = birthright::due(policies, org, idx, now);
    let holds = held.get(&person.id).map_or(&[][..], Vec::as_slice);
    let run = changes(&due, holds);
    let of_due = |dues: &[&Due]| dues.iter().map(|d| d.entitlement.clone()).collect();
    let of_held = |held: &[&Held]| held.iter().map(|h| h.entitlement.clone()).collect();
    PersonPlan {
        email: person.email.to_string(),
        name: person.display_name.clone(),
        person_id: person.id.0.clone(),
        active: person.active,
        grant: of_due(&run.grant),
        needs_approval: of_due(&run.approval),
        end: of_held(&run.end),
        keep: of_held(&run.keep),
        due,
        problems,
    }
}

fn what(entitlement: &Entitlement) -> String {
    match &entitlement.level {
        Some(level) => format!("{} at {level}", entitlement.resource),
        None => entitlement.resource.to_string(),
    }
}

fn write_text(plans: &[PersonPlan], policies: usize, out: &mut dyn Write) -> std::io::Result<()> {
    let grants: usize = plans.iter().map(|p| p.due.len()).sum();
    let people = plans.iter().filter(|p| !p.due.is_empty()).count();
    writeln!(
        out,
        "{policies} birthright policies: {people} of {} people are due {grants} grants",
        plans.len()
    )?;
    for plan in plans {
        if plan.due.is_empty() && plan.problems.is_empty() && plan.end.is_empty() {
            continue;
        }
        writeln!(out, "\n{} ({})", plan.email, plan.name)?;
        for due in &plan.due {
            let entitlement = &due.entitlement;
            let approval = match due.approval {
                Approval::None => "",
                Approval::Manager => ", approved by the manager first",
            };
            let run = if plan.grant.contains(entitlement) {
                "would be granted"
            } else if plan.needs_approval.contains(entitlement) {
                "would wait for the manager"
            } else if plan.keep.contains(entitlement) {
                "held, ending: would be kept"
            } else {
                "held"
            };
            writeln!(
                out,
                "  {}: by {}{approval} ({run})",
                what(entitlement),
                due.policies.join(", ")
            )?;
        }
        for entitlement in &plan.end {
            writeln!(
                out,
                "  {}: held, no longer due (would end after the grace period)",
                what(entitlement)
            )?;
        }
        for problem in &plan.problems {
            writeln!(out, "  not judged: {problem}")?;
        }
    }
    let inactive = plans.iter().filter(|p| !p.active).count();
    if inactive > 0 {
        writeln!(out, "\n{inactive} inactive people are due nothing.")?;
    }
    Ok(())
}

/// `tollgate lifecycle runs`: the newest runs (or one person's), with their tickets and what
/// became of them; held waves say how to release them.
pub async fn runs(
    config: &crate::config::Config,
    person: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), String> {
    use crate::store::lifecycle_runs::{self as runs, RunState};
    let store = super::migrated_store(config).await?;
    let result = async {
        let found = match person {
            None => runs::recent(&store, 200).await,
            Some(text) => {
                let email = Email::parse(text).map_err(|e| format!("--person: {e}"))?;
                runs::of_email(&store, &email).await
            }
        }
        .map_err(|e| e.to_string())?;
        let io = |e: std::io::Error| e.to_string();
        if found.is_empty() {
            writeln!(out, "no lifecycle runs").map_err(io)?;
        }
        for run in &found {
            let ticket = run
                .ticket
                .as_ref()
                .map_or_else(|| "no ticket".to_string(), |t| t.1.to_string());
            let what = match (run.state, &run.outcome) {
                (RunState::Held, _) => format!(
                    "held by the brake: `tollgate lifecycle release {}`",
                    run.version
                ),
                (RunState::Queued, _) => "queued".to_string(),
                (RunState::Done, outcome) => outcome.clone().unwrap_or_default(),
            };
            writeln!(
                out,
                "{}  {} {} <{}> (snapshot {}), {ticket}: {what}",
                run.created_at.format("%Y-%m-%d %H:%M"),
                run.event.as_str(),
                run.name,
                run.email,
                run.version,
            )
            .map_err(io)?;
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// `tollgate lifecycle release VERSION`: lets the joiners the brake held for that snapshot
/// have their birthright.
pub async fn release(
    config: &crate::config::Config,
    version: i64,
    by: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    let store = super::migrated_store(config).await?;
    let released = crate::identity::changes::release(&store, version, by, crate::clock::wall())
        .await
        .map_err(|e| e.to_string());
    store.close().await;
    match released? {
        0 => Err(format!(
            "no lifecycle runs are held for snapshot {version} (see `tollgate lifecycle runs`)"
        )),
        n => writeln!(
            out,
            "released {n} held runs of snapshot {version}: the service grants their birthright now"
        )
        .map_err(|e| e.to_string()),
    }
}

/// The birthright grants the configured database holds, by person.
pub async fn held_birthright(config: &crate::config::Config) -> Result<HeldBirthright, String> {
    let store = super::migrated_store(config).await?;
    let open = crate::store::requests::birthright_open(&store).await;
    store.close().await;
    let mut held = HeldBirthright::new();
    for request in open.map_err(|e| e.to_string())? {
        if let Some(person) = request.subject_person.clone()
            && let Some(grant) = Held::of(request)
        {
            held.entry(person).or_default().push(grant);
        }
    }
    Ok(held)
}

/// `tollgate report inactive`: access the inactive-account policy found unused too long, and
/// what became of it, newest first (`open`: only what is still open).
pub async fn inactive_report(
    config: &crate::config::Config,
    person: Option<&str>,
    open: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<usize, String> {
    use crate::store::inactive_cases;
    use crate::store::lifecycle_runs as runs;
    let person = person
        .map(|p| Email::parse(p).map_err(|e| format!("--person: {e}")))
        .transpose()?;
    let store = super::migrated_store(config).await?;
    let now = crate::clock::wall();
    let result = async {
        let cases = inactive_cases::all(&store)
            .await
            .map_err(|e| e.to_string())?;
        let mut rows = Vec::new();
        for case in cases {
            if open && !case.state.is_open() || person.as_ref().is_some_and(|p| *p != case.email) {
                continue;
            }
            let ticket = match case.run_id {
                Some(run) => runs::get(&store, run)
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|r| r.ticket)
                    .map(|t| t.1.to_string()),
                None => None,
            };
            rows.push(serde_json::json!({
                "email": case.email.as_str(),
                "name": case.name,
                "account": case.account.as_str(),
                "product": case.product,
                "last_used": case.since.to_string(),
                "unused_days": (now.date_naive() - case.since).num_days(),
                "action": case.action,
                "state": case.state.as_str(),
                "ends_at": case.ends_at,
                "ticket": ticket,
                "outcome": case.outcome,
                "found_at": case.created_at,
            }));
        }
        let io = |e: std::io::Error| e.to_string();
        if json {
            let text = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
            writeln!(out, "{text}").map_err(io)?;
            return Ok(rows.len());
        }
        const COLUMNS: [&str; 12] = [
            "email",
            "name",
            "account",
            "product",
            "last_used",
            "unused_days",
            "action",
            "state",
            "ends_at",
            "ticket",
            "outcome",
            "found_at",
        ];
        let mut text = Vec::new();
        crate::audit::report::csv_line(&mut text, COLUMNS.map(str::to_string));
        for row in &rows {
            let cells = COLUMNS.map(|c| match &row[c] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            });
            crate::audit::report::csv_line(&mut text, cells);
        }
        out.write_all(&text).map_err(io)?;
        Ok(rows.len())
    }
    .await;
    store.close().await;
    result
}
