//! The inactive-account policy (a workflow file whose top-level key is `inactive`): for each
//! Atlassian product, how long unused access may stay, and whether its holder's manager
//! reviews it or it ends (after a notice). Pure: the scan reads last-active dates and asks
//! [`InactivePolicy::judge`] what is inactive.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};

use crate::ids::{AccountId, Email};

/// What happens to access unused for longer than a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The manager decides in the person's lifecycle ticket: kept, or ended (declined or
    /// undecided by `lifecycle.decide_within`).
    Review,
    /// Ends after `notice`, announced in the person's lifecycle ticket; using the product
    /// before then keeps it.
    End { notice: Duration },
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Review => "review",
            Self::End { .. } => "end",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// An Admin API product key (`jira-software`, `confluence`, …).
    pub product: String,
    pub after: Duration,
    pub action: Action,
}

/// Who the policy never judges: service accounts and the like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exclusion {
    Email(Email),
    /// `*@domain`: every address of the domain.
    Domain(String),
    Account(AccountId),
}

impl Exclusion {
    /// `name@domain`, `*@domain` or `account:<id>`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Some(id) = text.strip_prefix("account:") {
            let id = id.trim();
            if id.is_empty() || id.contains(char::is_whitespace) {
                return Err(format!("`{text}` names no account id"));
            }
            return Ok(Self::Account(AccountId(id.to_string())));
        }
        if let Some(domain) = text.strip_prefix("*@") {
            if domain.is_empty() || !domain.contains('.') || domain.contains(['@', ' ', '*']) {
                return Err(format!("`{text}` is not `*@` and a domain"));
            }
            return Ok(Self::Domain(domain.to_ascii_lowercase()));
        }
        Email::parse(text)
            .map(Self::Email)
            .map_err(|e| format!("`{text}` is not an email, `*@domain` or `account:<id>`: {e}"))
    }

    fn covers(&self, email: &Email, account: &AccountId) -> bool {
        match self {
            Self::Email(e) => e == email,
            Self::Domain(d) => email
                .as_str()
                .rsplit_once('@')
                .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(d)),
            Self::Account(a) => a == account,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InactivePolicy {
    pub rules: Vec<Rule>,
    pub exclude: Vec<Exclusion>,
}

/// Access the policy finds unused too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inactive<'a> {
    pub rule: &'a Rule,
    /// The day the product was last used.
    pub since: NaiveDate,
}

impl InactivePolicy {
    pub fn excludes(&self, email: &Email, account: &AccountId) -> bool {
        self.exclude.iter().any(|x| x.covers(email, account))
    }

    /// What of `used` (product, last day used) is unused for longer than its rule allows at
    /// `now`. A product the rules do not name is never judged; neither is one never used (the
    /// Admin API lists a product once it has been used).
    pub fn judge<'a>(
        &'a self,
        used: &[(String, NaiveDate)],
        now: DateTime<Utc>,
    ) -> Vec<Inactive<'a>> {
        self.rules
            .iter()
            .filter_map(|rule| {
                let since = used
                    .iter()
                    .filter(|(product, _)| *product == rule.product)
                    .map(|(_, day)| *day)
                    .max()?;
                let after = chrono::TimeDelta::from_std(rule.after).ok()?;
                let last = since.and_hms_opt(0, 0, 0)?.and_utc();
                // The date is a day (and may lag by a day): counted from its end.
                (last + chrono::TimeDelta::days(1) + after <= now)
                    .then_some(Inactive { rule, since })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("day")
    }

    #[test]
    fn access_unused_longer_than_its_rule_is_inactive_and_nothing_else() {
        let policy = InactivePolicy {
            rules: vec![
                Rule {
                    product: "confluence".into(),
                    after: Duration::from_secs(90 * 86_400),
                    action: Action::Review,
                },
                Rule {
                    product: "jira-software".into(),
                    after: Duration::from_secs(30 * 86_400),
                    action: Action::End {
                        notice: Duration::from_secs(7 * 86_400),
                    },
                },
            ],
            exclude: Vec::new(),
        };
        let now: DateTime<Utc> = "2026-12-04T12:00:00Z".parse().expect("now");
        let used = vec![
            ("confluence".to_string(), day("2026-09-04")),
            ("jira-software".to_string(), day("2026-11-03")),
            ("opsgenie".to_string(), day("2020-01-01")),
        ];
        let found = policy.judge(&used, now);
        // Confluence: 90 days from the end of 09-04 end on 12-04 00:00: inactive.
        // Jira: 30 days from the end of 11-03 end on 12-04 00:00: inactive by noon.
        // Opsgenie: no rule names it.
        let names: Vec<(&str, NaiveDate)> = found
            .iter()
            .map(|i| (i.rule.product.as_str(), i.since))
            .collect();
        assert_eq!(
            names,
            [
                ("confluence", day("2026-09-04")),
                ("jira-software", day("2026-11-03"))
            ]
        );
        let recent = vec![("confluence".to_string(), day("2026-09-05"))];
        let early: DateTime<Utc> = "2026-12-03T23:59:00Z".parse().expect("now");
        assert!(policy.judge(&recent, early).is_empty(), "not yet 90 days");
        assert!(policy.judge(&[], now).is_empty(), "never used: not judged");
    }

    #[test]
    fn exclusions_name_an_email_a_domain_or_an_account() {
        let policy = InactivePolicy {
            rules: Vec::new(),
            exclude: [
                "svc-ci@acme.example",
                "*@Bots.Acme.Example",
                "account:5b10ac",
            ]
            .iter()
            .map(|x| Exclusion::parse(x).expect("valid"))
            .collect(),
        };
        let email = |e: &str| Email::parse(e).expect("email");
        let acc = |a: &str| AccountId(a.into());
        assert!(policy.excludes(&email("svc-ci@acme.example"), &acc("x")));
        assert!(policy.excludes(&email("deploy@bots.acme.example"), &acc("x")));
        assert!(policy.excludes(&email("ann@acme.example"), &acc("5b10ac")));
        assert!(!policy.excludes(&email("ann@acme.example"), &acc("x")));
        assert!(!policy.excludes(&email("ann@notbots.acme.example"), &acc("x")));
        for bad in ["*@", "account:", "not an email", "*@*.example"] {
            assert!(Exclusion::parse(bad).is_err(), "{bad}");
        }
    }
}
