//! The contract data the repository keeps (`tests/contract/*.json`): for each operation a fake
//! serves, what the vendor's published document says of it, reduced to what the checks read.
//! Written by [`super::generate`] from the full specs, read by [`super::Contract`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Data {
    /// The documents the operations were read from, by the key each operation names.
    pub sources: BTreeMap<String, Source>,
    pub operations: Vec<Operation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Source {
    /// The file in the specs folder (or, for a list kept by hand, where the list comes from).
    pub file: String,
    pub title: String,
    /// The version the document declares (`info.version`, a discovery revision).
    pub version: String,
    /// The path prefix its operations are served under: a call elsewhere is outside it.
    pub prefix: String,
    /// SHA-256 of the file, so a newer copy of the same version is noticed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operation {
    pub method: String,
    /// The path template as the source writes it (mounted where the API is served).
    pub path: String,
    pub source: String,
    /// Atlassian's `x-atlassian-connect-scope` (`INACCESSIBLE` included).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Only the method and path are known (a list, not a described operation).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub listed: bool,
    /// Path and query parameters, the operation's and its path item's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// `None`: the operation takes no body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<RequestBody>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    /// `path` or `query`.
    #[serde(rename = "in")]
    pub location: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The schema's `type`, where it has one.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestBody {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The JSON body's schema with every `$ref` resolved in place (a reference back into
    /// itself becomes `{}`); `None` when the body is not JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
}

impl Data {
    /// One operation a line, so a regenerated file diffs by operation.
    pub fn to_text(&self) -> String {
        let mut out = String::from("{\"sources\":");
        out.push_str(&serde_json::to_string_pretty(&self.sources).unwrap_or_default());
        out.push_str(",\n\"operations\":[\n");
        let lines: Vec<String> = self
            .operations
            .iter()
            .map(|op| serde_json::to_string(op).unwrap_or_default())
            .collect();
        out.push_str(&lines.join(",\n"));
        out.push_str("\n]}\n");
        out
    }
}
