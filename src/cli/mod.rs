//! Command implementations that do not need the server: `workflows check` and
//! `workflows simulate`. Output goes to the writers given, so tests can read it.

pub mod lifecycle;
pub mod scim_push;

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::orgchart::{Email, OrgIndex, OrgSnapshot, file as org_file};
use crate::store::org::SnapshotInfo;
use crate::workflow::{self, Decision, RequestedDuration, RouteRequest, Routing};
use crate::yamlfile::{Diagnostic, Severity, has_errors};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// Exit status of `workflows check`: 0 clean (warnings allowed), 1 with errors.
pub fn check(dir: &Path, org: Option<&Path>, out: &mut dyn Write) -> std::io::Result<i32> {
    let mut diagnostics = Vec::new();
    let org_path = org.map(Path::to_path_buf).or_else(|| find_org_file(dir));
    let index = match &org_path {
        Some(path) => match org_file::load(path) {
            Ok((snapshot, warnings)) => {
                diagnostics.extend(warnings);
                Some(OrgIndex::build(snapshot))
            }
            Err(errors) => {
                diagnostics.extend(errors);
                None
            }
        },
        None => None,
    };
    let outcome = workflow::load_dir(dir, index.as_ref());
    diagnostics.extend(outcome.diagnostics);
    for d in &diagnostics {
        writeln!(out, "{d}")?;
    }
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    match (&outcome.workflows, errors) {
        (Some(w), 0) => writeln!(
            out,
            "{}: {} resources, {} workflows, {} intake mapping(s), {} birthright policies, {}{}: OK, version {} ({warnings} warning(s))",
            dir.display(),
            w.catalog.resources().len(),
            w.workflows.len(),
            w.intake.len(),
            w.birthright.len(),
            w.inactive.as_ref().map_or_else(
                || "no inactive-account policy".to_string(),
                |p| format!("an inactive-account policy on {} product(s)", p.rules.len())
            ),
            org_path
                .as_ref()
                .map(|p| format!(", checked against {}", p.display()))
                .unwrap_or_default(),
            w.version,
        )?,
        _ => writeln!(
            out,
            "{}: {errors} error(s), {warnings} warning(s)",
            dir.display()
        )?,
    }
    Ok(if errors == 0 { 0 } else { 1 })
}

/// `org.yaml` in the workflows directory, used when `--org` is not given.
fn find_org_file(dir: &Path) -> Option<PathBuf> {
    ["org.yaml", "org.yml"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Workflows directory [default: TOLLGATE_WORKFLOWS_DIR, else ./workflows].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Org chart [default: the synced one in the configured database, else DIR/org.yaml].
    #[arg(long, value_name = "ORG.yaml")]
    pub org: Option<PathBuf>,
    /// Email of the person filing the request.
    #[arg(long)]
    pub requester: String,
    /// Resource id from the catalog.
    #[arg(long)]
    pub resource: String,
    /// Access level, for resources that have levels.
    #[arg(long)]
    pub level: Option<String>,
    /// How long, e.g. `14d` or `8h`, or `permanent` [default: the resource's default].
    #[arg(long)]
    pub duration: Option<String>,
    /// Why the access is needed.
    #[arg(long, default_value = "")]
    pub justification: String,
    /// Email of the person the access is for, when filing for someone else.
    #[arg(long)]
    pub on_behalf_of: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

/// Exit status of `workflows simulate`: 0 when a routing decision was made (whatever it is),
/// 1 when the inputs or the files are invalid.
/// `synced` is the org chart the database holds, used unless `--org` names a file; which chart
/// was used is said on `err`.
pub fn simulate(
    args: &SimulateArgs,
    default_dir: &Path,
    synced: Option<(SnapshotInfo, OrgSnapshot)>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> std::io::Result<i32> {
    let dir = args.dir.as_deref().unwrap_or(default_dir);
    let fail = |err: &mut dyn Write, message: String| -> std::io::Result<i32> {
        writeln!(err, "tollgate: {message}")?;
        Ok(1)
    };
    let (index, workflows) = match org_and_workflows(dir, args.org.as_deref(), synced, err)? {
        Ok(loaded) => loaded,
        Err(message) => return fail(err, message),
    };
    let requester = match Email::parse(&args.requester) {
        Ok(e) => e,
        Err(message) => return fail(err, format!("--requester: {message}")),
    };
    let on_behalf_of = match args.on_behalf_of.as_deref().map(Email::parse).transpose() {
        Ok(e) => e,
        Err(message) => return fail(err, format!("--on-behalf-of: {message}")),
    };
    let duration = match args.duration.as_deref() {
        None => RequestedDuration::Unspecified,
        Some("permanent") => RequestedDuration::Permanent,
        Some(text) => match crate::duration::parse(text) {
            Ok(d) => RequestedDuration::For(d),
            Err(message) => return fail(err, format!("--duration: {message}")),
        },
    };
    let request = RouteRequest {
        filed_by: &requester,
        on_behalf_of: on_behalf_of.as_ref(),
        resource: &args.resource,
        level: args.level.as_deref(),
        duration,
        justification: &args.justification,
        now: crate::clock::wall(),
    };
    let routing = match workflow::route(&workflows, &index, &request) {
        Ok(routing) => routing,
        Err(e) => return fail(err, e.to_string()),
    };
    match args.format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, &routing).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        Format::Text => write_text(&routing, out)?,
    }
    Ok(0)
}

/// The org chart (the synced one, unless `org` names a file; else `dir`'s `org.yaml`) and the
/// workflows of `dir` checked against it. Which chart was taken is said on `err`; what stops
/// the command is the inner `Err`.
fn org_and_workflows(
    dir: &Path,
    org: Option<&Path>,
    synced: Option<(SnapshotInfo, OrgSnapshot)>,
    err: &mut dyn Write,
) -> std::io::Result<Result<(OrgIndex, workflow::Workflows), String>> {
    let snapshot = match (org, synced) {
        (None, Some((info, snapshot))) => {
            writeln!(
                err,
                "org chart: the synced one (snapshot {} from {}, taken {})",
                info.version,
                info.source,
                info.taken_at.format("%Y-%m-%d %H:%M UTC")
            )?;
            snapshot
        }
        (given, _) => {
            let Some(org_path) = given.map(Path::to_path_buf).or_else(|| find_org_file(dir)) else {
                return Ok(Err("an org chart is needed: pass --org ORG.yaml".into()));
            };
            writeln!(err, "org chart: {}", org_path.display())?;
            match org_file::load(&org_path) {
                Ok((snapshot, _)) => snapshot,
                Err(diagnostics) => return Ok(Err(render(&diagnostics))),
            }
        }
    };
    let index = OrgIndex::build(snapshot);
    let outcome = workflow::load_dir(dir, Some(&index));
    Ok(match outcome.workflows {
        Some(workflows) => Ok((index, workflows)),
        None => Err(format!(
            "the workflows are invalid (run `tollgate workflows check`):\n{}",
            render(&outcome.diagnostics)
        )),
    })
}

fn render(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error || !has_errors(diagnostics))
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_text(routing: &Routing, out: &mut dyn Write) -> std::io::Result<()> {
    let decision = match routing.decision {
        Decision::Pending => "pending approval",
        Decision::AutoApproved => "approved automatically",
        Decision::Denied => "denied",
    };
    let level = routing
        .level
        .as_ref()
        .map(|l| format!(" (level {l})"))
        .unwrap_or_default();
    writeln!(out, "resource: {}{level}", routing.resource)?;
    writeln!(
        out,
        "workflow: {} (version {})",
        routing.workflow.as_deref().unwrap_or("none"),
        routing.workflow_version
    )?;
    writeln!(out, "decision: {decision}")?;
    let duration = match routing.duration_seconds {
        Some(s) => crate::duration::format(std::time::Duration::from_secs(s)),
        None => "permanent".into(),
    };
    writeln!(
        out,
        "duration: {duration}{}",
        if routing.capped { " (capped)" } else { "" }
    )?;
    for (i, stage) in routing.stages.iter().enumerate() {
        if stage.skipped {
            writeln!(out, "stage {}: {} — {}", i + 1, stage.name, stage.why)?;
        } else {
            writeln!(
                out,
                "stage {}: {} — {} of: {}",
                i + 1,
                stage.name,
                stage.required,
                stage.approvers.join(", ")
            )?;
            writeln!(out, "  why: {}", stage.why)?;
        }
    }
    for reason in &routing.reasons {
        writeln!(out, "reason: {reason}")?;
    }
    Ok(())
}

/// Progress on stderr: one line rewritten in place on a terminal, a line per 10 pages otherwise.
struct StderrProgress {
    terminal: bool,
}

impl crate::people::sync::Progress for StderrProgress {
    fn page(&self, pages: i64, people: usize, groups: usize) {
        if self.terminal {
            eprint!("\r  {pages} pages · {people} people · {groups} groups   ");
        } else if pages % 10 == 0 {
            eprintln!("  {pages} pages · {people} people · {groups} groups");
        }
    }
}

/// `tollgate org sync [--full]`.
pub async fn org_sync(config: &crate::config::Config, full: bool) -> Result<(), String> {
    use std::io::IsTerminal;

    use crate::idp::{Connector, Directory};
    use crate::people::sync;
    use crate::store::Store;
    use crate::store::org::RunKind;

    let store = Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let connector = Connector::new(&config.idp.source, &store);
    let source = connector.source();
    eprintln!("syncing the org chart from {source}…");
    let progress = StderrProgress {
        terminal: std::io::stderr().is_terminal(),
    };
    let clock = crate::clock::SystemClock;
    let result = sync::sync(&store, &connector, &clock, full, &progress).await;
    if progress.terminal {
        eprintln!();
    }
    // The running service applies the new snapshot (leavers, the brake, open stages) once.
    let queued = match &result {
        Ok(report) => match report.version {
            Some(v) => crate::jobs::queue_org_apply(&store, &format!("snapshot:{v}"))
                .await
                .map_err(|e| e.to_string()),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    };
    store.close().await;
    let report = result.map_err(|e| format!("org sync from {source} failed: {e}"))?;
    queued.map_err(|e| format!("the new org chart was stored but not queued for applying: {e}"))?;
    let kind = match report.kind {
        RunKind::Full => "full",
        RunKind::Incremental => "incremental",
    };
    let mut notes = Vec::new();
    if report.fell_back_to_full {
        notes.push("the incremental cursor was refused, so everything was read");
    }
    if report.resumed {
        notes.push("resumed an interrupted run");
    }
    let outcome = match report.version {
        Some(v) => format!("snapshot {v} is now current"),
        None => "nothing changed".to_string(),
    };
    println!(
        "{kind} sync: {} people, {} groups, {} pages in {:.1} s; {outcome}{}",
        report.people,
        report.groups,
        report.pages,
        report.millis as f64 / 1000.0,
        if notes.is_empty() {
            String::new()
        } else {
            format!(" ({})", notes.join("; "))
        }
    );
    Ok(())
}

/// `tollgate workflows jsm-options`: the Resource field's options, then the levels.
pub fn jsm_options(dir: &Path, out: &mut dyn Write) -> std::io::Result<i32> {
    let outcome = crate::workflow::load_dir(dir, None);
    let Some(workflows) = outcome.workflows else {
        for d in &outcome.diagnostics {
            writeln!(out, "{}:{}: {}", d.file.display(), d.pos.line, d.message)?;
        }
        return Ok(1);
    };
    let resources = workflows.catalog.resources();
    for resource in resources {
        writeln!(out, "{}", resource.name)?;
    }
    let with_levels: Vec<_> = resources.iter().filter(|r| !r.levels.is_empty()).collect();
    if !with_levels.is_empty() {
        writeln!(out)?;
        writeln!(out, "# Access levels (for the Access level field)")?;
        for resource in with_levels {
            let levels: Vec<&str> = resource.levels.iter().map(|l| l.id.as_str()).collect();
            writeln!(out, "# {}: {}", resource.name, levels.join(", "))?;
        }
    }
    Ok(0)
}

/// The secret key the service runs with, without ever making a new one: a verifier with a
/// fresh key would call every checkpoint forged.
fn existing_key(config: &crate::config::Config) -> Result<crate::secrets::SecretKey, String> {
    if let Some(key) = &config.secret_key {
        return Ok(key.clone());
    }
    let path = config
        .database
        .url
        .sqlite_file()
        .map(|file| crate::secrets::key_file_for(&file))
        .ok_or("no secret key: set TOLLGATE_SECRET_KEY to the key the service runs with")?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "no secret key: TOLLGATE_SECRET_KEY is unset and {} cannot be read ({e})",
            path.display()
        )
    })?;
    crate::secrets::SecretKey::from_base64(&text)
        .map_err(|e| format!("bad key file {}: {e}", path.display()))
}

/// Seals every stored secret again under the newest key, and records what it did.
async fn reseal_and_record(
    store: &crate::store::Store,
    keys: &crate::secrets::SecretKey,
) -> Result<crate::store::sealed::Resealed, crate::store::StoreError> {
    let done = crate::store::sealed::reseal_all(store, keys).await?;
    let mut tx = store.begin().await?;
    crate::audit::append(
        &mut tx,
        &crate::audit::Event {
            at: crate::clock::wall(),
            tenant: None,
            request_id: None,
            ticket_key: None,
            actor: crate::audit::Actor::System("secrets rotate".into()),
            action: crate::audit::Action::SecretsRotated,
            target: None,
            details: serde_json::json!({
                "key_id": keys.newest_id(),
                "resealed": done.resealed,
                "current": done.current,
                "failed": done.failed,
            }),
            workflow_version: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(done)
}

/// `tollgate secrets rotate`: every stored secret sealed again under the newest key; with
/// `new_key`, a fresh key first put in front of those in SQLite's key file.
pub async fn secrets_rotate(
    config: &crate::config::Config,
    new_key: bool,
    out: &mut dyn Write,
) -> Result<i32, String> {
    let mut keys = existing_key(config)?;
    if new_key {
        let file = match (&config.secret_key, config.database.url.sqlite_file()) {
            (None, Some(db)) => crate::secrets::key_file_for(&db),
            _ => {
                return Err(
                    "--new-key rotates SQLite's key file; with TOLLGATE_SECRET_KEY, put the new key first in it on every process (`openssl rand -base64 32`) and run this again without --new-key"
                        .into(),
                );
            }
        };
        keys = keys.with_new_key().map_err(|e| e.to_string())?;
        crate::secrets::replace_key_file(&file, &keys).map_err(|e| e.to_string())?;
        writeln!(
            out,
            "new key {} put first in {}",
            keys.newest_id(),
            file.display()
        )
        .map_err(|e| e.to_string())?;
    }
    let store = crate::store::Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let result = reseal_and_record(&store, &keys).await;
    store.close().await;
    let done = result.map_err(|e| e.to_string())?;
    writeln!(
        out,
        "sealed under key {}: {} resealed, {} already were, {} could not be opened",
        keys.newest_id(),
        done.resealed,
        done.current,
        done.failed.len()
    )
    .map_err(|e| e.to_string())?;
    for failed in &done.failed {
        writeln!(out, "  {failed}").map_err(|e| e.to_string())?;
    }
    Ok(if done.failed.is_empty() { 0 } else { 1 })
}

/// `tollgate audit evidence`: the ticket's evidence bundle, as pretty JSON.
pub async fn audit_evidence(
    config: &crate::config::Config,
    tenant: Option<&str>,
    ticket: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    use crate::audit::checkpoint::CheckpointKey;

    let ticket = &crate::ids::TicketKey::parse(ticket)?;
    let tenant = tenant.map(crate::ids::TenantKey::parse).transpose()?;
    let key = CheckpointKey::derive(&existing_key(config)?);
    let store = crate::store::Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let result = crate::audit::evidence::bundle(&store, &key, tenant.as_ref(), ticket).await;
    store.close().await;
    let bundle = result.map_err(|e| e.to_string())?;
    serde_json::to_writer_pretty(&mut *out, &bundle).map_err(|e| e.to_string())?;
    writeln!(out).map_err(|e| e.to_string())
}

/// `tollgate audit verify`: every chain (or one tenant's) against its checkpoints. Prints one
/// line per chain; returns 1 if any chain is broken.
pub async fn audit_verify(
    config: &crate::config::Config,
    tenant: Option<&str>,
    out: &mut dyn Write,
) -> Result<i32, String> {
    use crate::audit::checkpoint::CheckpointKey;

    let key = CheckpointKey::derive(&existing_key(config)?);
    let store = crate::store::Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let result = crate::audit::verify::verify(&store, &key, tenant).await;
    store.close().await;
    let reports = result.map_err(|e| e.to_string())?;
    // A mistyped tenant must not read as "verified".
    if let Some(tenant) = tenant
        && reports.is_empty()
    {
        return Err(format!("no audit chain named {tenant:?}"));
    }
    let mut broken = 0;
    let mut events = 0;
    for report in &reports {
        events += report.events;
        let span = match (report.first_seq, report.last_seq) {
            (Some(first), Some(last)) => format!("{first}..{last}"),
            _ => "none".into(),
        };
        let line = match &report.broken {
            None => format!(
                "ok      {}: {} events ({span}), {} checkpoints",
                report.chain, report.events, report.checkpoints
            ),
            Some(at) => {
                broken += 1;
                format!("BROKEN  {}: {at}", report.chain)
            }
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    writeln!(
        out,
        "{} chains, {events} events verified in {seconds:.1} s; {broken} broken",
        reports.len()
    )
    .map_err(|e| e.to_string())?;
    Ok(if broken > 0 { 1 } else { 0 })
}

/// `tollgate report access|active`: the report written to `out` page by page.
pub async fn report(
    config: &crate::config::Config,
    query: crate::audit::report::Query,
    format: crate::audit::report::Format,
    out: &mut dyn Write,
) -> Result<u64, String> {
    let store = crate::store::Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let mut report = crate::audit::report::Report::new(store.clone(), query, format);
    let result = async {
        while let Some(chunk) = report.next_chunk().await.map_err(|e| e.to_string())? {
            out.write_all(&chunk).map_err(|e| e.to_string())?;
        }
        out.flush().map_err(|e| e.to_string())
    }
    .await;
    store.close().await;
    result.map(|()| report.rows())
}

/// `tollgate webhook-source add`: registers a plain-webhook source and prints what to enter in
/// Jira's webhook form. The secret is shown this once.
pub async fn webhook_source_add(
    config: &crate::config::Config,
    name: &str,
    site: &str,
    api: Option<crate::jira_webhooks::ApiToken>,
    out: &mut dyn Write,
) -> Result<(), String> {
    // The key the service runs with (made beside a SQLite database on first use, as `serve` does).
    let (key, _) =
        crate::secrets::resolve_key(config.secret_key.as_ref(), config.database.url.key_home())
            .map_err(|e| e.to_string())?;
    let store = crate::store::Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let has_api = api.is_some();
    let result = crate::jira_webhooks::register(
        &store,
        &key,
        &config.server.base_url,
        name,
        site,
        api,
        crate::clock::wall(),
    )
    .await;
    store.close().await;
    let registered = result.map_err(|e| e.to_string())?;
    let lines = [
        format!("Registered {}.", registered.tenant),
        "In Jira (Settings > System > WebHooks > Create a WebHook):".into(),
        format!("  URL:    {}", registered.url),
        format!("  Secret: {}", registered.secret),
        "  Events: Issue created, Issue updated, Comment created".into(),
        "The secret is shown only now; running this again gives the source a new one.".into(),
        if has_api {
            "Outbound calls use the API token given.".into()
        } else {
            "Outbound calls use the source's stored API token, else TOLLGATE_ATLASSIAN_SITE_ADMIN_EMAIL/_TOKEN.".into()
        },
    ];
    for line in lines {
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Lists the removals the leaver brake holds, or approves one held sync's (`approve`).
pub async fn org_leavers(
    config: &crate::config::Config,
    approve: Option<i64>,
    by: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    use crate::store::Store;
    use crate::store::org_changes::{self, HoldState};

    let store = Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    let result = async {
        if let Some(version) = approve {
            let approved =
                crate::engine::org_change::approve(&store, version, by, crate::clock::wall())
                    .await
                    .map_err(|e| e.to_string())?;
            if !approved {
                return Err(format!(
                    "no removals are held for snapshot {version} (see `tollgate org leavers`)"
                ));
            }
            writeln!(
                out,
                "approved: the held leavers of snapshot {version} lose their access when the service applies it"
            )
            .map_err(|e| e.to_string())?;
            return Ok(());
        }
        let holds = org_changes::holds(&store).await.map_err(|e| e.to_string())?;
        if holds.is_empty() {
            writeln!(out, "no removals are held").map_err(|e| e.to_string())?;
        }
        for hold in holds {
            writeln!(
                out,
                "snapshot {}: {} of {} active people, {} ({})",
                hold.version,
                hold.people.len(),
                hold.active_before,
                hold.state.as_str(),
                match (&hold.state, &hold.decided_by) {
                    (HoldState::Held, _) => format!("approve with `tollgate org leavers --approve {}`", hold.version),
                    (_, Some(by)) => format!("by {by}"),
                    _ => "the people came back".to_string(),
                }
            )
            .map_err(|e| e.to_string())?;
            for person in &hold.people {
                writeln!(out, "  {} <{}>", person.name, person.email).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// Opens and migrates the configured database (the data migration included), and reads the
/// newest org chart snapshot.
async fn store_with_org(
    config: &crate::config::Config,
) -> Result<(crate::store::Store, OrgSnapshot), String> {
    let store = migrated_store(config).await?;
    crate::grants::people_migration::run(
        &store,
        config.atlassian.org_id.as_deref(),
        crate::clock::wall(),
    )
    .await
    .map_err(|e| e.to_string())?;
    match crate::store::org::latest(&store).await {
        Ok(Some((_, snapshot))) => Ok((store, snapshot)),
        Ok(None) => {
            store.close().await;
            Err("no org chart has been synced yet (`tollgate org sync`)".into())
        }
        Err(e) => {
            store.close().await;
            Err(e.to_string())
        }
    }
}

/// `tollgate webhook-source link NAME [--dry-run]`: the source joins its site's Connect or
/// Forge tenant. Its requests stay where they are (on its own audit chain); from then on its
/// events, lookups, reports and evidence treat the two as one site.
pub async fn webhook_source_link(
    config: &crate::config::Config,
    name: &str,
    dry_run: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let store = migrated_store(config).await?;
    let result = async {
        let plan = crate::engine::links::link_plan(&store, name)
            .await
            .map_err(|e| e.to_string())?;
        let say = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(|e| e.to_string());
        let verb = if dry_run { "Would link" } else { "Linking" };
        say(out, format!("{verb} {} to {} (the tenant of {}).", plan.source, plan.site, plan.host))?;
        say(
            out,
            format!(
                "{} requests stay on {}'s audit chain; new tickets from either door go to {}; reports and evidence for {} include both.",
                plan.requests, plan.source, plan.site, plan.site
            ),
        )?;
        if dry_run {
            return say(out, "Dry run: nothing changed.".into());
        }
        let linked = crate::engine::links::link(&store, &plan, crate::clock::wall(), "cli")
            .await
            .map_err(|e| e.to_string())?;
        say(out, if linked { "Linked.".into() } else { "Already linked by another run.".into() })
    }
    .await;
    store.close().await;
    result
}

/// Opens and migrates the configured database.
pub(crate) async fn migrated_store(
    config: &crate::config::Config,
) -> Result<crate::store::Store, String> {
    let store = crate::store::Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

/// `tollgate events list --dead`.
pub async fn events_dead(
    config: &crate::config::Config,
    out: &mut dyn Write,
) -> Result<(), String> {
    let store = migrated_store(config).await?;
    let result = async {
        let dead = crate::store::inbound::dead(&store)
            .await
            .map_err(|e| e.to_string())?;
        let notices = crate::store::notices::dead(&store)
            .await
            .map_err(|e| e.to_string())?;
        if dead.is_empty() && notices.is_empty() {
            writeln!(out, "no dead events").map_err(|e| e.to_string())?;
        }
        for e in &dead {
            writeln!(
                out,
                "{} {} {} from {} (delivery {}), {} tries, dead since {}: {}",
                e.id,
                e.event_type,
                e.received_at.to_rfc3339(),
                e.tenant,
                e.delivery_id,
                e.attempts,
                e.dead_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                e.last_error.as_deref().unwrap_or("")
            )
            .map_err(|e| e.to_string())?;
        }
        for n in &notices {
            writeln!(
                out,
                "notice {} for {} on {}, dead since {}: {}",
                n.key,
                n.ticket_key,
                n.tenant,
                n.dead_at.to_rfc3339(),
                n.reason
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// `tollgate events retry ID|--all`: the running service's worker processes them.
pub async fn events_retry(
    config: &crate::config::Config,
    id: Option<&str>,
    out: &mut dyn Write,
) -> Result<(), String> {
    let store = migrated_store(config).await?;
    // An event is named by its UUID; anything else names a ticket notice by its key.
    let event = id.map(uuid::Uuid::parse_str).transpose();
    let result = async {
        let (events, notices) = match (id, event) {
            (None, _) => (Some(None), Some(None)),
            (Some(_), Ok(Some(uuid))) => (Some(Some(vec![uuid])), None),
            (Some(key), _) => (None, Some(Some(key))),
        };
        let mut revived_events = Vec::new();
        if let Some(ids) = events {
            revived_events = crate::engine::events::retry_dead(&store, ids.as_deref())
                .await
                .map_err(|e| e.to_string())?;
        }
        let mut revived_notices = Vec::new();
        if let Some(key) = notices {
            revived_notices = crate::notices::retry_dead(&store, key)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>((revived_events.len(), revived_notices.len()))
    }
    .await;
    store.close().await;
    let (events, notices) = result?;
    if let Some(id) = id
        && events + notices == 0
    {
        return Err(format!(
            "{id} is not a dead event or notice (see `tollgate events list --dead`)"
        ));
    }
    writeln!(
        out,
        "queued {events} events and {notices} ticket notices for another round of retries"
    )
    .map_err(|e| e.to_string())
}

/// `tollgate org unmatched`.
pub async fn org_unmatched(
    config: &crate::config::Config,
    out: &mut dyn Write,
) -> Result<(), String> {
    let (store, snapshot) = store_with_org(config).await?;
    let result = async {
        let found = crate::grants::remap::unmatched(&store, &snapshot)
            .await
            .map_err(|e| e.to_string())?;
        if found.is_empty() {
            writeln!(
                out,
                "every open request and grant names a person in the org chart"
            )
            .map_err(|e| e.to_string())?;
        }
        for r in &found {
            let person = r
                .subject_person
                .as_ref()
                .map_or("no person id".to_string(), |p| {
                    format!("person {} is gone", p.0)
                });
            writeln!(
                out,
                "{} {} ({}): {} <{}>",
                r.tenant,
                r.ticket_key,
                r.state.as_str(),
                person,
                r.subject().unwrap_or("no email")
            )
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// `tollgate org remap [--dry-run]`.
pub async fn org_remap(
    config: &crate::config::Config,
    dry_run: bool,
    by: &str,
    out: &mut dyn Write,
) -> Result<(), String> {
    let (store, snapshot) = store_with_org(config).await?;
    let result = async {
        let remaps = crate::grants::remap::plan(&store, &snapshot)
            .await
            .map_err(|e| e.to_string())?;
        for r in &remaps {
            writeln!(
                out,
                "{} <{}>: {} -> {}",
                r.ticket,
                r.email,
                r.from.as_ref().map_or("(none)", |p| p.0.as_str()),
                r.to.0
            )
            .map_err(|e| e.to_string())?;
        }
        let verb = if dry_run { "would remap" } else { "remapped" };
        if !dry_run && !remaps.is_empty() {
            crate::grants::remap::apply(&store, &remaps, by, crate::clock::wall())
                .await
                .map_err(|e| e.to_string())?;
        }
        writeln!(out, "{verb} {} requests", remaps.len()).map_err(|e| e.to_string())?;
        Ok(())
    }
    .await;
    store.close().await;
    result
}

/// The newest org chart a sync stored in the configured database, if any. A SQLite database
/// that does not exist yet is not created for the asking.
pub async fn synced_org(
    config: &crate::config::Config,
) -> Result<Option<(SnapshotInfo, OrgSnapshot)>, String> {
    use crate::config::DatabaseUrl;
    use crate::store::Store;
    if let DatabaseUrl::Sqlite(url) = &config.database.url {
        let exists = config
            .database
            .url
            .sqlite_file()
            .is_some_and(|file| file.exists());
        if url.contains(":memory:") || !exists {
            return Ok(None);
        }
    }
    let store = Store::connect(&config.database)
        .await
        .map_err(|e| e.to_string())?;
    let latest = crate::store::org::latest(&store).await;
    store.close().await;
    latest.map_err(|e| e.to_string())
}

/// Prints the synced org chart in `org.yaml`'s shape (or as JSON).
pub async fn org_show(
    config: &crate::config::Config,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), String> {
    let Some((info, snapshot)) = synced_org(config).await? else {
        return Err("no org chart has been synced into this database (`tollgate org sync`)".into());
    };
    let shown = org_file::render(&snapshot);
    let text = if json {
        serde_json::to_string_pretty(&shown).map_err(|e| e.to_string())? + "\n"
    } else {
        format!(
            "# snapshot {} from {}, taken {}\n{}",
            info.version,
            info.source,
            info.taken_at.to_rfc3339(),
            serde_saphyr::to_string(&shown).map_err(|e| e.to_string())?
        )
    };
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())
}
