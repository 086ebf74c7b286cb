//! The `tollgate` command line: a thin layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use tollgate::app::{Application, Mode};
use tollgate::config::{Config, LogFormat};
use tollgate::store::Store;

/// Access-request workflows for Jira Service Management: route each request to the right
/// approvers, grant the access in the identity provider and in Atlassian, remove it when it
/// expires, and keep a tamper-evident record of every step.
///
/// Settings come from an optional TOML file and from environment variables (which win);
/// see docs/configuration.md for every one of them.
#[derive(Debug, Parser)]
#[command(name = "tollgate", version, about, long_about)]
struct Cli {
    /// TOML configuration file; environment variables override what it says.
    #[arg(long, global = true, env = "TOLLGATE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (Connect app, webhooks, API) with an embedded job worker.
    ///
    /// Applies pending database migrations first. Stops gracefully on SIGTERM or SIGINT,
    /// finishing in-flight requests and jobs.
    Serve {
        /// Serve HTTP only, for web replicas when separate `tollgate worker` processes run jobs.
        #[arg(long)]
        no_worker: bool,
    },
    /// Run background jobs only (grants, expiries, reminders, syncs), without the HTTP server.
    Worker,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Check and try out the workflow files (resource catalog, workflows, intake mapping).
    #[command(subcommand)]
    Workflows(WorkflowsCommand),
    /// The org chart: people, managers and groups from the identity provider.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Acknowledged events (webhooks) that could not be processed.
    #[command(subcommand)]
    Events(EventsCommand),
    /// The tamper-evident audit trail.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Compliance reports, written to stdout (CSV by RFC 4180, or JSON).
    #[command(subcommand)]
    Report(ReportCommand),
    /// Plain Jira webhooks, for sites that cannot install the app (see docs/install.md).
    #[command(subcommand)]
    WebhookSource(WebhookSourceCommand),
    /// The keys that seal stored secrets (TOLLGATE_SECRET_KEY).
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// The identity lifecycle: birthright access for joiners and movers.
    #[command(subcommand)]
    Lifecycle(LifecycleCommand),
    /// The SCIM 2.0 endpoint identity providers push people to (TOLLGATE_IDP_KIND=scim_push).
    #[command(subcommand)]
    ScimPush(ScimPushCommand),
}

#[derive(Debug, Subcommand)]
enum ScimPushCommand {
    /// The bearer tokens identity providers push with.
    #[command(subcommand)]
    Token(ScimTokenCommand),
}

#[derive(Debug, Subcommand)]
enum ScimTokenCommand {
    /// Issue a token (shown once). To rotate: issue a new one, put it in the IdP, then revoke
    /// the old one once `list` shows it no longer pushes.
    Issue {
        /// Which identity provider pushes with it, e.g. `okta` or `entra`.
        #[arg(long)]
        name: String,
        /// Who issues it, for the audit log (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
    /// List the tokens: when each last pushed, and which are revoked.
    List,
    /// Revoke a token by its id: pushes with it are refused at once.
    Revoke {
        id: String,
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum LifecycleCommand {
    /// Show, for the org chart, what the birthright policies give each person and by which
    /// policy (text, or --format json). Changes nothing.
    Plan(tollgate::cli::lifecycle::PlanArgs),
    /// List the lifecycle runs (a joiner's birthright): their tickets and what became of them.
    Runs {
        /// Only this person's (by email).
        #[arg(long, value_name = "EMAIL")]
        person: Option<String>,
    },
    /// Let the joiners the brake held for one snapshot have their birthright (the VERSION
    /// `tollgate lifecycle runs` shows).
    Release {
        version: i64,
        /// Who releases them, for the audit log (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Seal every stored secret again under the newest key (the first in TOLLGATE_SECRET_KEY),
    /// after a new key was put in front of the old ones on every process. Keep the old key at
    /// the end of the list: its audit checkpoints verify only with it.
    Rotate {
        /// Without TOLLGATE_SECRET_KEY (SQLite's key file): put a new key in front in the file
        /// first. Stop the service before, start it after.
        #[arg(long)]
        new_key: bool,
    },
}

#[derive(Debug, Subcommand)]
enum WebhookSourceCommand {
    /// Register a source (or give it a new secret) and print the URL and secret for Jira.
    Add {
        /// The source's name, used in its URL: a-z, 0-9 and -.
        name: String,
        /// The Jira Cloud site it is, e.g. https://acme.atlassian.net (Data Center is not supported).
        #[arg(long)]
        site: String,
        /// A site-admin account Tollgate calls Jira as (with --api-token-file).
        #[arg(long, requires = "api_token_file")]
        api_email: Option<String>,
        /// A file holding that account's API token.
        #[arg(long, requires = "api_email")]
        api_token_file: Option<std::path::PathBuf>,
    },
    /// Link a source to its site's Connect or Forge tenant: one site, one tenant. Its requests
    /// stay on its own audit chain; reports and evidence treat the two as one site.
    Link {
        /// The source's name (or `jira-webhook:NAME`).
        name: String,
        /// Say what would change, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// One row per request filed, granted or ended in the period: requester, resource, level,
    /// justification, workflow, every approval (who, when, how), when and where it was
    /// granted, expiry, and when and why it ended, with the ticket link.
    Access {
        /// First day (YYYY-MM-DD, midnight in --tz) or an RFC 3339 time.
        #[arg(long)]
        from: String,
        /// Last day, included (YYYY-MM-DD), or an RFC 3339 time (excluded).
        #[arg(long)]
        to: String,
        #[command(flatten)]
        common: ReportArgs,
    },
    /// Who holds what through Tollgate right now, with expiry.
    Active {
        #[command(flatten)]
        common: ReportArgs,
    },
    /// Atlassian access the inactive-account policy found unused too long: who, which product,
    /// last used, what the policy does (review or end), and what became of it.
    Inactive {
        /// Only this person (email).
        #[arg(long)]
        person: Option<String>,
        /// Only what is still open (found, noticed, under review).
        #[arg(long)]
        open: bool,
        /// csv or json.
        #[arg(long, default_value = "csv")]
        format: String,
    },
}

#[derive(Debug, clap::Args)]
struct ReportArgs {
    /// Only this resource (its catalog id).
    #[arg(long)]
    resource: Option<String>,
    /// Only requests by or for this person (email).
    #[arg(long)]
    person: Option<String>,
    /// Only this site's requests (its Connect client key) [default: every site].
    #[arg(long)]
    tenant: Option<String>,
    /// Time zone for dates and times (IANA name, e.g. Europe/Berlin) [default: UTC].
    #[arg(long)]
    tz: Option<String>,
    /// csv or json.
    #[arg(long, default_value = "csv")]
    format: String,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Walk every audit chain and check each link, each hash and the signed checkpoints
    /// (TOLLGATE_SECRET_KEY must be the service's key). Reports the first broken link of each
    /// chain (event id, expected vs found) and exits 1 if any chain is broken.
    Verify {
        /// Only this tenant's chain (its client key, or `system`).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Write one ticket's evidence bundle (JSON on stdout): the request, its routing, every
    /// decision, every grant and revoke step, its audit events, and the chain links from them
    /// to the nearest signed checkpoint. docs/audit.md shows how to check it.
    Evidence {
        /// The ticket key, e.g. IT-42.
        ticket: String,
        /// The site's client key, when several sites have that ticket key.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Sync the org chart from the configured identity source (TOLLGATE_IDP_KIND) now:
    /// incremental from the stored cursor, or everything with --full (also when the source
    /// refuses the cursor). Shows progress on stderr and a summary on stdout.
    Sync {
        /// Read everything instead of the changes since the last sync.
        #[arg(long)]
        full: bool,
    },
    /// Print the synced org chart in org.yaml's shape (or JSON).
    Show {
        #[arg(long, value_enum, default_value = "yaml")]
        format: ShowFormat,
    },
    /// List the leavers whose removal the leaver brake holds, or approve one held sync's
    /// removals (`--approve VERSION`, the snapshot version the list shows).
    Leavers {
        #[arg(long, value_name = "VERSION")]
        approve: Option<i64>,
        /// Who approves, for the audit log (default: the login name).
        #[arg(long, requires = "approve")]
        by: Option<String>,
    },
    /// List the requests (not over) whose person is not in the synced org chart: filed or
    /// migrated while they were not in it, or with an id the source no longer has.
    Unmatched,
    /// Find each request's person again by email in the synced org chart: after changing the
    /// identity source, which gives everyone new ids. Shows what changes; --dry-run changes
    /// nothing.
    Remap {
        #[arg(long)]
        dry_run: bool,
        /// Who remaps, for the audit log (default: the login name).
        #[arg(long)]
        by: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum EventsCommand {
    /// List the events given up on (retries ran out, or the error was permanent), with why.
    List {
        /// Only the dead ones (the only ones listed today; kept for the flag's meaning).
        #[arg(long)]
        dead: bool,
    },
    /// Give dead events and ticket notices a fresh round of retries: one by its id (an
    /// event's UUID, a notice's key), or every one with --all.
    Retry {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ShowFormat {
    Yaml,
    Json,
}

#[derive(Debug, Subcommand)]
enum WorkflowsCommand {
    /// Validate every file: YAML syntax, unknown keys, types, durations, CEL conditions,
    /// selectors, references between files, overlapping workflows, and (with an org chart)
    /// unknown people and groups. Prints each problem as `file:line:column: message`; exits 1
    /// if there are errors.
    Check {
        /// Directory to check [default: TOLLGATE_WORKFLOWS_DIR, else ./workflows].
        dir: Option<PathBuf>,
        /// Org chart to check people and groups against [default: DIR/org.yaml if present].
        #[arg(long, value_name = "ORG.yaml")]
        org: Option<PathBuf>,
    },
    /// Show how a request would be routed, without touching anything.
    Simulate(tollgate::cli::SimulateArgs),
    /// Print the options for the JSM request type's Resource field (the catalog's resource
    /// names, one per line), then each resource's access levels.
    JsmOptions {
        /// Directory to read [default: TOLLGATE_WORKFLOWS_DIR, else ./workflows].
        dir: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tollgate: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    tollgate::telemetry::init(&config.log);
    let config_format = config.log.format;
    // reqwest is built without a default crypto provider; install ring once for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let result = match cli.command {
        Command::Serve { no_worker } => {
            let mode = if no_worker { Mode::WebOnly } else { Mode::All };
            run(config, mode).await
        }
        Command::Worker => run(config, Mode::WorkerOnly).await,
        Command::Migrate => migrate(&config).await,
        Command::Workflows(command) => return workflows(command, &config).await,
        Command::Lifecycle(LifecycleCommand::Plan(args)) => {
            return lifecycle_plan(args, &config).await;
        }
        Command::Lifecycle(LifecycleCommand::Runs { person }) => {
            let mut out = std::io::stdout().lock();
            tollgate::cli::lifecycle::runs(&config, person.as_deref(), &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Lifecycle(LifecycleCommand::Release { version, by }) => {
            let by = operator(by);
            let mut out = std::io::stdout().lock();
            tollgate::cli::lifecycle::release(&config, version, &by, &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Audit(AuditCommand::Verify { tenant }) => {
            let mut out = std::io::stdout().lock();
            return match tollgate::cli::audit_verify(&config, tenant.as_deref(), &mut out).await {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("tollgate: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::ScimPush(ScimPushCommand::Token(command)) => {
            let mut out = std::io::stdout().lock();
            match command {
                ScimTokenCommand::Issue { name, by } => {
                    tollgate::cli::scim_push::issue(&config, &name, &operator(by), &mut out).await
                }
                ScimTokenCommand::List => tollgate::cli::scim_push::list(&config, &mut out).await,
                ScimTokenCommand::Revoke { id, by } => {
                    tollgate::cli::scim_push::revoke(&config, &id, &operator(by), &mut out).await
                }
            }
            .map_err(Into::into)
        }
        Command::Secrets(SecretsCommand::Rotate { new_key }) => {
            let mut out = std::io::stdout().lock();
            return match tollgate::cli::secrets_rotate(&config, new_key, &mut out).await {
                Ok(0) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("tollgate: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Audit(AuditCommand::Evidence { ticket, tenant }) => {
            let mut out = std::io::stdout().lock();
            tollgate::cli::audit_evidence(&config, tenant.as_deref(), &ticket, &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Report(command) => return report(command, &config).await,
        Command::WebhookSource(WebhookSourceCommand::Add {
            name,
            site,
            api_email,
            api_token_file,
        }) => {
            let api = match (api_email, api_token_file) {
                (Some(email), Some(file)) => match std::fs::read_to_string(&file) {
                    Ok(token) => Some(tollgate::jira_webhooks::ApiToken {
                        email,
                        token: tollgate::config::Secret::new(token.trim()),
                    }),
                    Err(e) => {
                        eprintln!("tollgate: cannot read {}: {e}", file.display());
                        return ExitCode::from(2);
                    }
                },
                _ => None,
            };
            let mut out = std::io::stdout().lock();
            tollgate::cli::webhook_source_add(&config, &name, &site, api, &mut out)
                .await
                .map_err(Into::into)
        }
        Command::WebhookSource(WebhookSourceCommand::Link { name, dry_run }) => {
            let mut out = std::io::stdout().lock();
            tollgate::cli::webhook_source_link(&config, &name, dry_run, &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Events(EventsCommand::List { .. }) => {
            let mut out = std::io::stdout().lock();
            tollgate::cli::events_dead(&config, &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Events(EventsCommand::Retry { id, .. }) => {
            let mut out = std::io::stdout().lock();
            tollgate::cli::events_retry(&config, id.as_deref(), &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Org(OrgCommand::Sync { full }) => tollgate::cli::org_sync(&config, full)
            .await
            .map_err(Into::into),
        Command::Org(OrgCommand::Show { format }) => {
            let mut out = std::io::stdout().lock();
            tollgate::cli::org_show(&config, matches!(format, ShowFormat::Json), &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Org(OrgCommand::Leavers { approve, by }) => {
            let by = operator(by);
            let mut out = std::io::stdout().lock();
            tollgate::cli::org_leavers(&config, approve, &by, &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Org(OrgCommand::Unmatched) => {
            let mut out = std::io::stdout().lock();
            tollgate::cli::org_unmatched(&config, &mut out)
                .await
                .map_err(Into::into)
        }
        Command::Org(OrgCommand::Remap { dry_run, by }) => {
            let by = operator(by);
            let mut out = std::io::stdout().lock();
            tollgate::cli::org_remap(&config, dry_run, &by, &mut out)
                .await
                .map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // Once, to stderr: a JSON log stream gets it as one more JSON line.
            match config_format {
                LogFormat::Json => tracing::error!(error = %e, "tollgate failed"),
                LogFormat::Pretty => eprintln!("tollgate: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config, mode: Mode) -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::build(config, mode).await?;
    app.shutdown_handle().trigger_on_signals();
    app.run_until_stopped().await?;
    Ok(())
}

async fn migrate(config: &Config) -> Result<(), Box<dyn std::error::Error>> {
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    let pending = store.pending_migrations().await?;
    store.close().await;
    if pending.is_empty() {
        println!(
            "migrations applied: the {} database is up to date",
            store.backend().as_str()
        );
        Ok(())
    } else {
        Err(format!("migrations still pending after migrate: {pending:?}").into())
    }
}

async fn inactive_report(
    config: &Config,
    person: Option<&str>,
    open: bool,
    format: &str,
) -> ExitCode {
    let json = match format {
        "csv" => false,
        "json" => true,
        other => {
            eprintln!("tollgate: --format {other}: csv or json");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    rows_written(
        tollgate::cli::lifecycle::inactive_report(config, person, open, json, &mut out).await,
    )
}

/// A report's exit: its row count on stderr (stdout is the report), or why it failed.
fn rows_written(result: Result<impl std::fmt::Display, String>) -> ExitCode {
    match result {
        Ok(rows) => {
            eprintln!("{rows} rows");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn report(command: ReportCommand, config: &Config) -> ExitCode {
    use tollgate::audit::report::{self, Format, Query, Scope};
    let (period, common) = match command {
        ReportCommand::Access { from, to, common } => (Some((from, to)), common),
        ReportCommand::Active { common } => (None, common),
        ReportCommand::Inactive {
            person,
            open,
            format,
        } => return inactive_report(config, person.as_deref(), open, &format).await,
    };
    let query = (|| -> Result<(Query, Format), String> {
        let tz = report::parse_tz(common.tz.as_deref())?;
        let scope = match period {
            Some((from, to)) => Scope::Period {
                from: report::parse_bound(&from, tz, false)?,
                to: report::parse_bound(&to, tz, true)?,
            },
            None => Scope::Active,
        };
        let query = Query {
            scope,
            resource: common.resource,
            person: common.person,
            tenant: common
                .tenant
                .as_deref()
                .map(tollgate::ids::TenantKey::parse)
                .transpose()?,
            tz,
        };
        Ok((query, Format::parse(&common.format)?))
    })();
    let (query, format) = match query {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("tollgate: {e}");
            return ExitCode::from(2);
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    rows_written(tollgate::cli::report(config, query, format, &mut out).await)
}

/// The synced org chart, unless the command names an org file (or none can be read: said, and
/// the command looks for `org.yaml`).
async fn synced_unless(
    org: Option<&std::path::Path>,
    config: &Config,
) -> Option<(
    tollgate::store::org::SnapshotInfo,
    tollgate::orgchart::OrgSnapshot,
)> {
    if org.is_some() {
        return None;
    }
    tollgate::cli::synced_org(config).await.unwrap_or_else(|e| {
        eprintln!("tollgate: the synced org chart cannot be read ({e}); trying org.yaml");
        None
    })
}

/// Who runs an operator's command, for the audit log: `--by`, else the login name.
fn operator(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".into())
}

async fn lifecycle_plan(args: tollgate::cli::lifecycle::PlanArgs, config: &Config) -> ExitCode {
    let synced = synced_unless(args.org.as_deref(), config).await;
    // What people hold is compared only on the synced chart (a file's people hold nothing).
    let held = match &synced {
        None => Default::default(),
        Some(_) => tollgate::cli::lifecycle::held_birthright(config)
            .await
            .unwrap_or_else(|e| {
                eprintln!(
                    "tollgate: the birthright held cannot be read ({e}); planning as if none"
                );
                Default::default()
            }),
    };
    let result = tollgate::cli::lifecycle::plan(
        &args,
        &config.workflows_dir,
        synced,
        &held,
        tollgate::clock::wall(),
        &mut std::io::stdout().lock(),
        &mut std::io::stderr(),
    );
    exit_code(result)
}

fn exit_code(result: std::io::Result<i32>) -> ExitCode {
    match result {
        Ok(0) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("tollgate: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn workflows(command: WorkflowsCommand, config: &Config) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let result = match command {
        WorkflowsCommand::Check { dir, org } => {
            let dir = dir.unwrap_or_else(|| config.workflows_dir.clone());
            tollgate::cli::check(&dir, org.as_deref(), &mut out)
        }
        WorkflowsCommand::JsmOptions { dir } => {
            let dir = dir.unwrap_or_else(|| config.workflows_dir.clone());
            tollgate::cli::jsm_options(&dir, &mut out)
        }
        WorkflowsCommand::Simulate(args) => {
            let synced = synced_unless(args.org.as_deref(), config).await;
            tollgate::cli::simulate(
                &args,
                &config.workflows_dir,
                synced,
                &mut out,
                &mut std::io::stderr(),
            )
        }
    };
    exit_code(result)
}
