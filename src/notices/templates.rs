//! The ticket's comments, from the Handlebars templates in `templates/` (compiled in, so a
//! template that does not render is a failing test, never a runtime surprise). The output is
//! plain text with `**bold**` and lists, turned into ADF by `atlassian::adf`.

use std::sync::OnceLock;

use handlebars::Handlebars;
use serde_json::Value;

const TEMPLATES: &[(&str, &str)] = &[
    ("routed", include_str!("../../templates/routed.hbs")),
    ("invalid", include_str!("../../templates/invalid.hbs")),
    (
        "stage_approved",
        include_str!("../../templates/stage_approved.hbs"),
    ),
    ("waiting", include_str!("../../templates/waiting.hbs")),
    ("approved", include_str!("../../templates/approved.hbs")),
    (
        "auto_approved",
        include_str!("../../templates/auto_approved.hbs"),
    ),
    ("declined", include_str!("../../templates/declined.hbs")),
    ("refused", include_str!("../../templates/refused.hbs")),
    ("reminder", include_str!("../../templates/reminder.hbs")),
    ("escalated", include_str!("../../templates/escalated.hbs")),
    ("rerouted", include_str!("../../templates/rerouted.hbs")),
    ("granted", include_str!("../../templates/granted.hbs")),
    (
        "grant_failed",
        include_str!("../../templates/grant_failed.hbs"),
    ),
    ("ended", include_str!("../../templates/ended.hbs")),
    (
        "revoke_failed",
        include_str!("../../templates/revoke_failed.hbs"),
    ),
    (
        "grant_delayed",
        include_str!("../../templates/grant_delayed.hbs"),
    ),
    (
        "expiry_reminder",
        include_str!("../../templates/expiry_reminder.hbs"),
    ),
    (
        "extension_routed",
        include_str!("../../templates/extension_routed.hbs"),
    ),
    ("extended", include_str!("../../templates/extended.hbs")),
    ("drift", include_str!("../../templates/drift.hbs")),
    ("lifecycle", include_str!("../../templates/lifecycle.hbs")),
    (
        "lifecycle_decide",
        include_str!("../../templates/lifecycle_decide.hbs"),
    ),
    (
        "lifecycle_decided",
        include_str!("../../templates/lifecycle_decided.hbs"),
    ),
    ("inactive", include_str!("../../templates/inactive.hbs")),
    (
        "inactive_case",
        include_str!("../../templates/inactive_case.hbs"),
    ),
];

fn registry() -> &'static Handlebars<'static> {
    static REGISTRY: OnceLock<Handlebars<'static>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let mut registry = Handlebars::new();
        // The text becomes ADF nodes, not HTML: nothing to escape.
        registry.register_escape_fn(handlebars::no_escape);
        for (name, text) in TEMPLATES {
            if let Err(e) = registry.register_template_string(name, *text) {
                tracing::error!(template = name, error = %e, "a ticket template does not parse");
            }
        }
        registry
    })
}

/// Renders template `name`; blank lines the template's control blocks leave are dropped.
pub fn render(name: &str, context: &Value) -> Result<String, String> {
    let text = registry()
        .render(name, context)
        .map_err(|e| format!("template {name}: {e}"))?;
    let mut out = String::new();
    let mut blank = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            blank = true;
            continue;
        }
        if blank && !out.is_empty() {
            out.push('\n');
        }
        blank = false;
        out.push_str(line);
        out.push('\n');
    }
    Ok(out.trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_template_parses_and_renders() {
        let context = json!({
            "requester": "Erin Evans", "resource": "NetSuite", "level": "admin", "duration": "14 days",
            "stages": [
                {"number": 1, "name": "manager", "required": "any", "approver_names": "Dan Diaz", "current": true, "skipped": false},
                {"number": 2, "name": "owner", "skipped": true, "why": "no owner"},
            ],
            "reasons": "finance systems need two approvals", "reason": "quarter close",
            "workflow_version": "abc", "approver": "Dan Diaz", "stage": "manager", "stage_number": 1,
            "next": "owner", "next_number": 2, "next_approvers": "Ola Olsen", "approvals": 1, "required": 2,
            "who": "Ola Olsen", "why": "only Dan Diaz may decide stage 1 (manager).",
            "approvers": "Carol Chen", "previous": "Dan Diaz", "after": "2 days",
            "expired": true, "done": ["IdP group NetSuite Users"], "failed": ["Jira group x: refused"],
            "kept": ["role Administrators in Jira project FIN: still granted by IT-9"],
            "expires": "2026-12-05 10:00", "left": "1 hour", "extra": "7 days", "target": "IdP group X",
            "rolled_back": true,
        });
        for (name, _) in TEMPLATES {
            let text = render(name, &context).unwrap_or_else(|e| panic!("{e}"));
            assert!(!text.is_empty(), "{name}");
            assert!(!text.contains("{{"), "{name}: {text}");
        }
        let routed = render("routed", &context).expect("routed");
        assert!(
            routed.contains("**NetSuite (admin)** for 14 days"),
            "{routed}"
        );
        assert!(
            routed.contains("- Stage 1, manager: any of Dan Diaz (now)"),
            "{routed}"
        );
        assert!(
            routed.contains("- Stage 2, owner: skipped (no owner)"),
            "{routed}"
        );
    }
}
