//! The mnistc cache folder: `$MNISTC_CACHE`, else `$XDG_CACHE_HOME/mnistc`, else
//! `$HOME/.cache/mnistc`, else `./.mnistc-cache`. The training cache keeps its checkpoints there
//! and downloaded data sets live in its `data/` sub-folder. Deleting it is always safe.

use std::path::PathBuf;

/// The cache folder from the environment (see the module docs).
pub fn root() -> PathBuf {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    var("MNISTC_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("mnistc")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("mnistc")))
        .unwrap_or_else(|| PathBuf::from(".mnistc-cache"))
}

/// Where data sets are downloaded when no data directory was named: `ROOT/data`.
pub fn data() -> PathBuf {
    root().join("data")
}
