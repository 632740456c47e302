//! The problems of the audit's input files, gathered as they are read: one file's error is
//! shown alone, the problems of several together (`diag::Problems`).

use rstaudit::diag::{Diagnostic, Problems};

/// The problems found so far, and the error of each file (shown alone when it is the only one).
#[derive(Default)]
pub(super) struct Found {
    errors: Vec<(anyhow::Error, Vec<Diagnostic>)>,
    /// A config file was read: the problems are of it and the files it names.
    pub config: bool,
}

impl Found {
    pub fn add(&mut self, error: anyhow::Error, problems: Vec<Diagnostic>) {
        self.errors.push((error, problems));
    }

    pub fn into_result(mut self) -> anyhow::Result<()> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(self.errors.remove(0).0),
            _ => Err(Problems {
                what: if self.config {
                    "the config file and the files it names".to_string()
                } else {
                    "the files the flags name".to_string()
                },
                problems: self.errors.into_iter().flat_map(|(_, p)| p).collect(),
            }
            .into()),
        }
    }
}
