//! Which sites may install the app: a signed install proves Atlassian signed it, not that the
//! site is one this deployment serves. Patterns are `scheme://host[:port]`, where the host may
//! start with `*.` (any subdomain, at any depth) and the port may be `*`.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    scheme: String,
    /// Lowercase; `suffix` true for `*.example.com` (stored as `.example.com`).
    host: String,
    suffix: bool,
    /// `None`: the scheme's default port only; `Some(None)`: any port.
    port: Option<Option<u16>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSites(Vec<Pattern>);

impl AllowedSites {
    /// A comma-separated list of patterns.
    pub fn parse(list: &str) -> Result<Self, String> {
        let patterns = list
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(parse_pattern)
            .collect::<Result<Vec<_>, _>>()?;
        if patterns.is_empty() {
            return Err("no site patterns: no site could install".into());
        }
        Ok(Self(patterns))
    }

    /// Whether `base_url` (an install's `baseUrl`) is one of the allowed sites.
    pub fn allows(&self, base_url: &str) -> bool {
        let Ok(url) = reqwest::Url::parse(base_url) else {
            return false;
        };
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return false;
        };
        // Userinfo in a site URL is never Atlassian's.
        if !url.username().is_empty() || url.password().is_some() {
            return false;
        }
        self.0.iter().any(|p| {
            p.scheme == url.scheme()
                && if p.suffix {
                    host.ends_with(&p.host) && host.len() > p.host.len()
                } else {
                    host == p.host
                }
                && match p.port {
                    Some(None) => true,
                    Some(Some(port)) => url.port_or_known_default() == Some(port),
                    None => url.port().is_none(),
                }
        })
    }
}

impl fmt::Display for AllowedSites {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .0
            .iter()
            .map(|p| {
                let host = if p.suffix {
                    format!("*{}", p.host)
                } else {
                    p.host.clone()
                };
                let port = match p.port {
                    None => String::new(),
                    Some(None) => ":*".into(),
                    Some(Some(n)) => format!(":{n}"),
                };
                format!("{}://{host}{port}", p.scheme)
            })
            .collect();
        f.write_str(&shown.join(","))
    }
}

fn parse_pattern(text: &str) -> Result<Pattern, String> {
    let bad =
        |why: &str| format!("`{text}` is not a site pattern like https://*.atlassian.net: {why}");
    let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
    if scheme != "https" && scheme != "http" {
        return Err(bad("the scheme must be https or http"));
    }
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') || rest.contains('@') || rest.contains('?') {
        return Err(bad("only a host and port"));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, "*")) => (host, Some(None)),
        Some((host, port)) => (
            host,
            Some(Some(
                port.parse::<u16>()
                    .map_err(|_| bad("the port is not a number"))?,
            )),
        ),
        None => (rest, None),
    };
    let (host, suffix) = match host.strip_prefix("*.") {
        Some(domain) => (format!(".{domain}"), true),
        None => (host.to_string(), false),
    };
    let labels = host.trim_start_matches('.');
    if labels.is_empty()
        || labels.contains('*')
        || !labels
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(bad("the host may only start with `*.`"));
    }
    // A bare `*.com` would let anyone's domain in.
    if suffix && !labels.contains('.') {
        return Err(bad("a wildcard needs a domain of at least two labels"));
    }
    Ok(Pattern {
        scheme: scheme.to_string(),
        host: host.to_ascii_lowercase(),
        suffix,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn default() -> AllowedSites {
        AllowedSites::parse("https://*.atlassian.net, https://*.jira.com").expect("default")
    }

    #[test]
    fn atlassian_sites_are_allowed_and_lookalikes_are_not() {
        let sites = default();
        for ok in [
            "https://acme.atlassian.net",
            "https://acme.atlassian.net/",
            "https://ACME.Atlassian.net/wiki",
            "https://acme.jira.com",
            "https://acme.atlassian.net:443",
        ] {
            assert!(sites.allows(ok), "{ok}");
        }
        for refused in [
            "http://acme.atlassian.net",
            "https://atlassian.net",
            "https://acme.atlassian.net.evil.com",
            "https://evilatlassian.net",
            "https://acme.atlassian.net:8443",
            "https://user@acme.atlassian.net",
            "http://127.0.0.1:8080",
            "not a url",
            "",
        ] {
            assert!(!sites.allows(refused), "{refused}");
        }
    }

    #[test]
    fn ports_and_exact_hosts() {
        let sites =
            AllowedSites::parse("http://127.0.0.1:*,https://jira.example.com:8443").expect("parse");
        assert!(sites.allows("http://127.0.0.1:45123"));
        assert!(sites.allows("http://127.0.0.1"));
        assert!(!sites.allows("https://127.0.0.1:45123"));
        assert!(sites.allows("https://jira.example.com:8443/"));
        assert!(!sites.allows("https://jira.example.com"));
        assert!(!sites.allows("https://x.jira.example.com:8443"));
        assert_eq!(
            sites.to_string(),
            "http://127.0.0.1:*,https://jira.example.com:8443"
        );
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "acme.atlassian.net",
            "ftp://x.com",
            "https://*.com",
            "https://a.*.com",
            "https://x.com/path",
            "https://x.com:port",
            "",
            " , ",
        ] {
            assert!(AllowedSites::parse(bad).is_err(), "{bad}");
        }
    }
}
