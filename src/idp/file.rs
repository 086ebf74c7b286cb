//! The `file` source: `org.yaml`, read whole. Read-only; "incremental" notices that the file
//! changed (its hash) and asks for a full reload.

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use super::{Changes, Directory, IdpError, Page};
use crate::orgchart::file as org_file;

#[derive(Debug, Clone)]
pub struct FileDirectory {
    pub path: PathBuf,
}

impl FileDirectory {
    fn read(&self) -> Result<String, IdpError> {
        std::fs::read_to_string(&self.path)
            .map_err(|e| IdpError::Unavailable(format!("{}: {e}", self.path.display())))
    }

    fn hash(text: &str) -> String {
        Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

impl Directory for FileDirectory {
    fn source(&self) -> String {
        format!("file:{}", self.path.display())
    }

    async fn start_cursor(&self) -> Result<String, IdpError> {
        Ok(Self::hash(&self.read()?))
    }

    async fn read_page(&self, _resume: Option<&str>) -> Result<Page, IdpError> {
        let text = self.read()?;
        let (snapshot, diagnostics) = org_file::parse(&self.path, &text);
        let snapshot = snapshot.ok_or_else(|| {
            let first = diagnostics
                .first()
                .map(|d| d.message.clone())
                .unwrap_or_default();
            IdpError::Config(format!(
                "{} is not a valid org chart: {first}",
                self.path.display()
            ))
        })?;
        Ok(Page {
            people: snapshot.people,
            groups: snapshot.groups,
            departments: snapshot.departments,
            next: None,
        })
    }

    async fn changes_since(&self, cursor: &str) -> Result<Changes, IdpError> {
        let now = Self::hash(&self.read()?);
        if now == cursor {
            Ok(Changes {
                deltas: Vec::new(),
                cursor: now,
            })
        } else {
            Err(IdpError::CursorExpired("org.yaml changed".into()))
        }
    }
}
