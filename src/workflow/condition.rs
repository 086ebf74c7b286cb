//! Conditions (`when`, `auto_approve`, `deny`) in CEL, the expression language Kubernetes and
//! Google Cloud IAM use for the same job: compiled and checked once at load, evaluated per request.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, LazyLock};

use cel::{Context, Env, Program, Value};
use chrono::{DateTime, Utc};

use crate::orgchart::{OrgIndex, PersonIdx};

/// The variables a request's condition (`when`, `auto_approve`, `deny`) may read.
pub const VARIABLES: &[&str] = &["requester", "resource", "request", "now"];

/// The variables a birthright policy's `when` may read: the person, and the time.
pub const PERSON_VARIABLES: &[&str] = &["person", "now"];

/// Functions Tollgate adds to CEL's standard library.
const OWN_FUNCTIONS: &[&str] = &["days"];

/// Macros whose first argument binds a variable (`groups.exists(g, g == "x")`).
const BINDING_MACROS: &[&str] = &["exists_one", "exists", "all", "map", "filter"];

static ENV: LazyLock<Arc<Env>> = LazyLock::new(|| Arc::new(Env::stdlib()));

#[derive(Clone)]
pub struct Condition {
    source: String,
    program: Arc<Program>,
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Condition({:?})", self.source)
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Condition {
    /// Compiles a request's condition and checks it names only [`VARIABLES`] and known
    /// functions.
    pub fn compile(source: &str) -> Result<Self, String> {
        Self::compile_reading(source, VARIABLES)
    }

    /// Compiles a condition over a person alone ([`PERSON_VARIABLES`]).
    pub fn compile_for_person(source: &str) -> Result<Self, String> {
        Self::compile_reading(source, PERSON_VARIABLES)
    }

    fn compile_reading(source: &str, variables: &[&str]) -> Result<Self, String> {
        let program = ENV.compile(source).map_err(|e| {
            // The parser's message repeats the source with a caret; keep the first line.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("syntax error");
            // The parser lists every token it would have accepted; the position says enough.
            let first = first.split(" expecting ").next().unwrap_or(first);
            let first = first
                .trim_start_matches("ERROR: ")
                .trim_start_matches("<input>:");
            format!("invalid CEL expression at {first}")
        })?;
        let references = program.references();
        let bound = bound_variables(source);
        for variable in references.variables() {
            if !variables.contains(&variable) && !bound.iter().any(|b| b == variable) {
                return Err(format!(
                    "unknown variable `{variable}` (this condition can read {})",
                    variables.join(", ")
                ));
            }
        }
        for function in references.functions() {
            if !is_known_function(function) {
                return Err(format!("unknown function `{function}`"));
            }
        }
        Ok(Self {
            source: source.to_string(),
            program: Arc::new(program),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a boolean; anything else (an error, a missing attribute, a non-boolean
    /// result) is an `Err` the caller decides how to treat.
    pub fn evaluate(&self, facts: &Facts) -> Result<bool, String> {
        self.run(&[
            ("requester", &facts.requester),
            ("resource", &facts.resource),
            ("request", &facts.request),
            ("now", &facts.now),
        ])
    }

    /// Evaluates a condition compiled with [`Condition::compile_for_person`].
    pub fn evaluate_person(
        &self,
        person: &PersonFacts,
        now: DateTime<Utc>,
    ) -> Result<bool, String> {
        self.run(&[
            ("person", &person.value()),
            ("now", &Value::Timestamp(now.fixed_offset())),
        ])
    }

    fn run(&self, variables: &[(&str, &Value)]) -> Result<bool, String> {
        let mut context = Context::with_env(ENV.clone());
        // `days` cannot clash with the standard library: the load-time check proves it.
        let _ = context.add_function("days", |n: i64| Value::Duration(chrono::Duration::days(n)));
        for (name, value) in variables {
            context.add_variable_from_value(*name, (*value).clone());
        }
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!(
                "`{}` gave {other:?}, not true or false",
                self.source
            )),
            Err(e) => Err(format!("`{}` could not be evaluated: {e}", self.source)),
        }
    }
}

fn is_known_function(name: &str) -> bool {
    if OWN_FUNCTIONS.contains(&name)
        || name.starts_with('_')
        || name.starts_with('@')
        || name == "!_"
    {
        return true;
    }
    // The standard library registers its functions on the environment; registering the same
    // name again is refused, which is how to ask whether it exists.
    let mut probe = Context::with_env(ENV.clone());
    probe.add_function(name, || 0i64).is_err()
}

/// Names bound by comprehension macros in `source` (`x` in `list.all(x, …)`).
fn bound_variables(source: &str) -> Vec<String> {
    let mut bound = Vec::new();
    for name in BINDING_MACROS {
        let pattern = format!("{name}(");
        let mut rest = source;
        while let Some(at) = rest.find(&pattern) {
            let preceded_by_dot = rest[..at].trim_end().ends_with('.');
            rest = &rest[at + pattern.len()..];
            if !preceded_by_dot {
                continue;
            }
            let ident: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !ident.is_empty() {
                bound.push(ident);
            }
        }
    }
    bound
}

/// What conditions can see about one request, converted to CEL values once per request.
#[derive(Debug, Clone)]
pub struct Facts {
    requester: Value,
    resource: Value,
    request: Value,
    now: Value,
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let map: HashMap<String, Value> = entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    Value::Map(map.into())
}

fn text(s: &str) -> Value {
    Value::String(Arc::new(s.to_string()))
}

fn list(items: impl IntoIterator<Item = String>) -> Value {
    Value::List(Arc::new(
        items
            .into_iter()
            .map(|s| Value::String(Arc::new(s)))
            .collect(),
    ))
}

/// The person the access is for, as conditions see them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonFacts {
    pub id: String,
    pub email: String,
    pub name: String,
    pub title: String,
    pub department: String,
    pub cost_center: String,
    pub manager: String,
    pub groups: Vec<String>,
    pub employment_type: String,
    pub active: bool,
    pub attributes: Vec<(String, String)>,
}

impl PersonFacts {
    /// The person at `idx` of the org chart.
    pub fn of(org: &OrgIndex, idx: PersonIdx) -> Self {
        let person = org.person(idx);
        Self {
            id: person.id.0.clone(),
            email: person.email.as_str().to_string(),
            name: person.display_name.clone(),
            title: person.title.clone().unwrap_or_default(),
            department: person.department.clone().unwrap_or_default(),
            cost_center: person.cost_center.clone().unwrap_or_default(),
            manager: org
                .manager_of(idx)
                .map(|m| org.person(m).email.as_str().to_string())
                .unwrap_or_default(),
            groups: org.groups_of(idx).map(str::to_string).collect(),
            employment_type: person.employment_type.as_str().to_string(),
            active: person.active,
            attributes: person
                .attributes
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// As CEL sees them (`requester` in a request's conditions, `person` in a birthright's).
    fn value(&self) -> Value {
        let attributes: HashMap<String, Value> = self
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect();
        map(vec![
            ("id", text(&self.id)),
            ("email", text(&self.email)),
            ("name", text(&self.name)),
            ("title", text(&self.title)),
            ("department", text(&self.department)),
            ("cost_center", text(&self.cost_center)),
            ("manager", text(&self.manager)),
            ("groups", list(self.groups.clone())),
            ("employment_type", text(&self.employment_type)),
            ("active", Value::Bool(self.active)),
            ("attributes", Value::Map(attributes.into())),
        ])
    }
}

#[derive(Debug, Clone, Default)]
pub struct ResourceFacts {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub owner: String,
    pub level: String,
}

#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    /// `None` for permanent access.
    pub duration: Option<std::time::Duration>,
    pub justification: String,
    pub on_behalf_of: String,
    pub filed_by: String,
}

/// CEL has no "forever"; permanent access reads as a duration longer than any real one.
const PERMANENT_DAYS: i64 = 365 * 100;

impl Facts {
    pub fn new(
        person: &PersonFacts,
        resource: &ResourceFacts,
        request: &RequestFacts,
        now: DateTime<Utc>,
    ) -> Self {
        let duration = match request.duration {
            Some(d) => chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX),
            None => chrono::Duration::days(PERMANENT_DAYS),
        };
        Self {
            requester: person.value(),
            resource: map(vec![
                ("id", text(&resource.id)),
                ("name", text(&resource.name)),
                ("tags", list(resource.tags.clone())),
                ("owner", text(&resource.owner)),
                ("level", text(&resource.level)),
            ]),
            request: map(vec![
                ("duration", Value::Duration(duration)),
                ("permanent", Value::Bool(request.duration.is_none())),
                ("justification", text(&request.justification)),
                ("on_behalf_of", text(&request.on_behalf_of)),
                ("filed_by", text(&request.filed_by)),
            ]),
            now: Value::Timestamp(now.fixed_offset()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn facts(days: u64, tags: &[&str], employment: &str) -> Facts {
        Facts::new(
            &PersonFacts {
                email: "ada@x.io".into(),
                employment_type: employment.into(),
                groups: vec!["Engineers".into()],
                attributes: vec![("location".into(), "Berlin".into())],
                ..Default::default()
            },
            &ResourceFacts {
                id: "netsuite".into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                ..Default::default()
            },
            &RequestFacts {
                duration: Some(Duration::from_secs(days * 86_400)),
                ..Default::default()
            },
            DateTime::from_timestamp(1_800_000_000, 0).expect("valid"),
        )
    }

    fn eval(source: &str, facts: &Facts) -> Result<bool, String> {
        Condition::compile(source)?.evaluate(facts)
    }

    #[test]
    fn days_compares_with_request_durations() {
        let long = facts(10, &[], "full_time");
        let short = facts(3, &[], "full_time");
        let cond = "request.duration > days(7)";
        assert_eq!(eval(cond, &long), Ok(true));
        assert_eq!(eval(cond, &short), Ok(false));
        assert_eq!(
            eval("request.duration <= duration('72h')", &short),
            Ok(true)
        );
    }

    #[test]
    fn reads_every_kind_of_fact() {
        let f = facts(1, &["sox", "finance"], "contractor");
        assert_eq!(eval("\"sox\" in resource.tags", &f), Ok(true));
        assert_eq!(
            eval("requester.employment_type == 'contractor'", &f),
            Ok(true)
        );
        assert_eq!(
            eval("requester.groups.exists(g, g == 'Engineers')", &f),
            Ok(true)
        );
        assert_eq!(
            eval("requester.attributes.location == 'Berlin'", &f),
            Ok(true)
        );
        assert_eq!(eval("has(requester.attributes.badge)", &f), Ok(false));
        assert_eq!(
            eval("now > timestamp('2020-01-01T00:00:00Z')", &f),
            Ok(true)
        );
        assert_eq!(eval("!request.permanent", &f), Ok(true));
    }

    #[test]
    fn compile_rejects_syntax_errors_and_unknown_names() {
        assert!(
            Condition::compile("request.duration >")
                .unwrap_err()
                .contains("invalid CEL")
        );
        assert!(
            Condition::compile("requestr.email == ''")
                .unwrap_err()
                .contains("`requestr`")
        );
        assert!(
            Condition::compile("dayz(3) > request.duration")
                .unwrap_err()
                .contains("`dayz`")
        );
        assert!(Condition::compile("resource.tags.all(t, t != 'sox')").is_ok());
    }

    #[test]
    fn evaluation_problems_are_errors_not_panics() {
        let f = facts(1, &[], "full_time");
        assert!(eval("requester.attributes.badge == 'x'", &f).is_err());
        assert!(
            eval("requester.email", &f)
                .unwrap_err()
                .contains("not true or false")
        );
        assert!(eval("1 / 0 == 1", &f).is_err());
    }
}
