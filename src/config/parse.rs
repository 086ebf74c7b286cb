//! Typed parsing of one raw value: each returns the reason a value is refused, which the loader
//! puts beside the setting's name and source.

use std::time::Duration;

pub(super) fn parse_base_url(v: &str) -> Result<String, String> {
    let trimmed = v.trim_end_matches('/');
    let ok = (trimmed.starts_with("https://") || trimmed.starts_with("http://"))
        && trimmed
            .split("://")
            .nth(1)
            .is_some_and(|rest| !rest.is_empty())
        && !trimmed.contains(['?', '#', ' ']);
    if ok {
        Ok(trimmed.to_string())
    } else {
        Err(format!(
            "`{v}` is not an absolute http(s) URL without query or fragment"
        ))
    }
}

/// A PEM private key named by its file (the path is not secret; the file is).
pub(super) fn read_key_file(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read `{path}`: {e}"))?;
    if text.contains("PRIVATE KEY-----") {
        Ok(text)
    } else {
        Err(format!("`{path}` holds no PEM private key"))
    }
}

pub(super) fn comma_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An id that goes into a URL path: no separators or spaces.
pub(super) fn parse_identifier(v: &str) -> Result<String, String> {
    let ok = !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_:.".contains(c));
    ok.then(|| v.to_string())
        .ok_or_else(|| format!("`{v}` is not an id (letters, digits, - _ : .)"))
}

pub(super) fn parse_positive<T: std::str::FromStr + Default + PartialOrd>(
    v: &str,
) -> Result<T, String> {
    match v.parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("`{v}` is not a positive whole number")),
    }
}

/// `2%` or `0.02`: a share between 0 and 1.
pub(super) fn parse_share(v: &str) -> Result<f64, String> {
    let share = match v.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => v.trim().parse::<f64>(),
    }
    .map_err(|_| format!("`{v}` is not a share (2% or 0.02)"))?;
    if (0.0..=1.0).contains(&share) {
        Ok(share)
    } else {
        Err(format!("`{v}` is not between 0% and 100%"))
    }
}

pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("`{v}` is not true or false")),
    }
}

pub(super) fn parse_positive_duration(v: &str) -> Result<Duration, String> {
    match crate::duration::parse(v)? {
        d if d.is_zero() => Err("must be longer than zero".into()),
        d => Ok(d),
    }
}
