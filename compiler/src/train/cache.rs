//! The training cache: trained weights reused by later builds when nothing that influences
//! training has changed.
//!
//! The key is the SHA-256 of the spec's training-relevant canonical JSON (everything but `name`,
//! `[quantize]` and `[target]`, overrides applied), the data files' SHA-256 digests and the mnistc
//! version. Entries live in `$MNISTC_CACHE`, else `$XDG_CACHE_HOME/mnistc`, else
//! `$HOME/.cache/mnistc`, else `./.mnistc-cache`, one checkpoint file per key, and, while a
//! training of that key is under way or was interrupted, its state after the last finished
//! epoch (`KEY.resume`), from which the same command continues. Deleting the folder is always
//! safe (an interrupted training then starts again from its first epoch).

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::data::FileDigest;
use crate::spec::ModelSpec;
use crate::train::Checkpoint;

/// A cache folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// The cache at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The cache folder from the environment (see the module docs).
    pub fn from_env() -> Self {
        Self { dir: crate::cache_dir::root() }
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The training key of `spec` on data with `digests`.
    pub fn key(spec: &ModelSpec, digests: &[FileDigest]) -> String {
        let mut h = Sha256::new();
        h.update(b"mnistc ");
        h.update(env!("CARGO_PKG_VERSION").as_bytes());
        h.update(b"\n");
        h.update(spec.training_key_json().as_bytes());
        for d in digests {
            h.update(b"\n");
            h.update(serde_json::to_string(d).unwrap_or_default().as_bytes());
        }
        crate::data::hex(&h.finalize())
    }

    /// Where the checkpoint of `key` lives.
    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.ckpt"))
    }

    /// Where a training of `key` saves its state after every epoch until it finishes (see
    /// [`crate::train::TrainOptions::resume`]).
    pub fn resume_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.resume"))
    }

    /// The cached training of `spec` on data with `digests`, if there is a usable one.
    pub fn load(&self, spec: &ModelSpec, digests: &[FileDigest]) -> Option<Checkpoint> {
        let path = self.path(&Self::key(spec, digests));
        let checkpoint = Checkpoint::load(&path).ok()?;
        checkpoint.is_reusable_for(spec, digests).then_some(checkpoint)
    }

    /// Stores a checkpoint for `spec` and `digests`.
    ///
    /// # Errors
    /// The I/O error of creating the folder or writing the files.
    pub fn store(&self, spec: &ModelSpec, digests: &[FileDigest], checkpoint: &Checkpoint) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(&Self::key(spec, digests));
        checkpoint.save(&path).map_err(std::io::Error::other)?;
        Ok(path)
    }
}
