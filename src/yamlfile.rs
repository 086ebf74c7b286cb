//! Files people write by hand (workflows, the catalog, `org.yaml`): parsing with positions and
//! problems reported as `file:line:column: message` with the offending line quoted.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_saphyr::{Location, Spanned};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// A position in a source file, 1-based. Line 0 means "the file as a whole".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

impl Pos {
    pub fn of(location: &Location) -> Self {
        Self {
            line: location.line(),
            column: location.column(),
        }
    }

    pub fn of_spanned<T>(spanned: &Spanned<T>) -> Self {
        Self::of(&spanned.referenced)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub pos: Pos,
    pub message: String,
    /// The source line the position points into, when known.
    pub snippet: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {kind}: {}",
            self.file.display(),
            self.pos.line,
            self.pos.column,
            self.message
        )?;
        if let Some(snippet) = &self.snippet {
            let width = self.pos.line.to_string().len();
            write!(f, "\n {:>width$} | {snippet}", self.pos.line)?;
            if self.pos.column > 0 {
                let pad = " ".repeat(self.pos.column.saturating_sub(1) as usize);
                write!(f, "\n {:>width$} | {pad}^", "")?;
            }
        }
        Ok(())
    }
}

/// Collects problems for one source file, quoting its lines.
#[derive(Debug)]
pub struct Reporter<'a> {
    file: &'a Path,
    text: &'a str,
    pub diagnostics: &'a mut Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a Path, text: &'a str, diagnostics: &'a mut Vec<Diagnostic>) -> Self {
        Self {
            file,
            text,
            diagnostics,
        }
    }

    pub fn file(&self) -> &Path {
        self.file
    }

    pub fn error(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(Severity::Error, pos, message.into());
    }

    pub fn warning(&mut self, pos: Pos, message: impl Into<String>) {
        self.push(Severity::Warning, pos, message.into());
    }

    fn push(&mut self, severity: Severity, pos: Pos, message: String) {
        let snippet = (pos.line > 0)
            .then(|| self.text.lines().nth(pos.line as usize - 1))
            .flatten()
            .map(str::to_string);
        self.diagnostics.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            pos,
            message,
            snippet,
        });
    }

    /// Parses the whole file as `T`. A syntax or type error is reported (serde stops at the
    /// first one in a file) and `None` returned.
    pub fn parse<T: DeserializeOwned>(&mut self) -> Option<T> {
        match serde_saphyr::from_str::<T>(self.text) {
            Ok(value) => Some(value),
            Err(e) => {
                let pos = e.location().map(|l| Pos::of(&l)).unwrap_or_default();
                let message = e.without_snippet().to_string();
                // The library appends "at line L, column C"; we print the position up front.
                let message = match message.rfind(" at line ") {
                    Some(cut) if pos.line > 0 => message[..cut].to_string(),
                    _ => message,
                };
                self.error(pos, message);
                None
            }
        }
    }
}

pub fn has_errors(diagnostics: &[Diagnostic]) -> bool {
    diagnostics.iter().any(|d| d.severity == Severity::Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        count: u32,
    }

    #[test]
    fn a_type_error_is_reported_with_position_and_snippet() {
        let mut diagnostics = Vec::new();
        let text = "# comment\ncount: many\n";
        let parsed: Option<Sample> =
            Reporter::new(Path::new("w/x.yaml"), text, &mut diagnostics).parse();
        assert!(parsed.is_none());
        let rendered = diagnostics[0].to_string();
        assert!(rendered.starts_with("w/x.yaml:2:8: error: "), "{rendered}");
        assert!(rendered.contains("count: many"), "{rendered}");
        assert!(rendered.contains("       ^"), "{rendered}");
    }

    #[test]
    fn unknown_keys_are_errors() {
        let mut diagnostics = Vec::new();
        let parsed: Option<Sample> = Reporter::new(
            Path::new("x.yaml"),
            "count: 1\ncuont: 2\n",
            &mut diagnostics,
        )
        .parse();
        assert!(parsed.is_none());
        assert_eq!(diagnostics[0].pos.line, 2);
        assert!(diagnostics[0].message.contains("cuont"));
    }
}
