//! Parsed LoRA files kept by an engine, so that switching sets between jobs reads no file twice:
//! the most recently used files up to a count, a file changed on disk read again.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use super::LoraFile;
use crate::error::{Error, Result};

/// Parsed LoRA files, least recently used first.
pub struct LoraCache {
    entries: Vec<(PathBuf, Stamp, Arc<LoraFile>)>,
    capacity: usize,
}

/// What tells a file changed on disk: its length and modification time.
type Stamp = (u64, Option<SystemTime>);

fn stamp(path: &Path) -> Result<Stamp> {
    let m = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    Ok((m.len(), m.modified().ok()))
}

impl LoraCache {
    /// Files parsed before are kept up to `capacity` (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: Vec::new(),
            capacity: capacity.max(1),
        }
    }

    /// The parsed file at `path`, read unless held and unchanged; the returned flag says whether
    /// it was read now.
    pub fn get(&mut self, path: &Path) -> Result<(Arc<LoraFile>, bool)> {
        let now = stamp(path)?;
        let found = self.entries.iter().position(|(p, _, _)| p == path);
        if let Some(i) = found {
            let entry = self.entries.remove(i);
            if entry.1 == now {
                let file = entry.2.clone();
                self.entries.push(entry);
                return Ok((file, false));
            }
        }
        let file = Arc::new(LoraFile::open(path)?);
        if self.entries.len() == self.capacity {
            self.entries.remove(0);
        }
        self.entries.push((path.to_path_buf(), now, file.clone()));
        Ok((file, true))
    }

    /// How many files it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
