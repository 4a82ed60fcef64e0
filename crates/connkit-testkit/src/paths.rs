//! Where the workspace and its target directory are.

use std::io;
use std::path::{Path, PathBuf};

/// The workspace root: the nearest ancestor of the package being tested that
/// holds `Cargo.lock` or a `Cargo.toml` with a `[workspace]` table.
///
/// The search starts from the `CARGO_MANIFEST_DIR` that cargo sets when it
/// runs a test binary and falls back to this crate's own manifest directory
/// as recorded at compile time.
///
/// # Errors
///
/// `NotFound` when no ancestor looks like a workspace root.
pub fn workspace_root() -> io::Result<PathBuf> {
    let starts = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(PathBuf::from(env!("CARGO_MANIFEST_DIR"))));
    for start in starts {
        if let Some(root) = start.ancestors().find(|dir| is_workspace_root(dir)) {
            return Ok(root.to_path_buf());
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "no workspace root (a directory with Cargo.lock or a [workspace] Cargo.toml) \
         above CARGO_MANIFEST_DIR",
    ))
}

fn is_workspace_root(dir: &Path) -> bool {
    if dir.join("Cargo.lock").is_file() {
        return true;
    }
    std::fs::read_to_string(dir.join("Cargo.toml"))
        .map(|manifest| manifest.lines().any(|l| l.trim() == "[workspace]"))
        .unwrap_or(false)
}

/// The workspace target directory: `CARGO_TARGET_DIR` (or
/// `CARGO_BUILD_TARGET_DIR`) when set, relative values taken from the
/// workspace root, else `<workspace root>/target`.
///
/// # Errors
///
/// Those of [`workspace_root`].
pub fn target_dir() -> io::Result<PathBuf> {
    let root = workspace_root()?;
    let from_env = ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
        .iter()
        .filter_map(std::env::var_os)
        .find(|v| !v.is_empty())
        .map(PathBuf::from);
    Ok(match from_env {
        Some(dir) if dir.is_absolute() => dir,
        Some(dir) => root.join(dir),
        None => root.join("target"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workspace_root_holds_the_interop_scripts() {
        let root = workspace_root().expect("workspace root");
        assert!(
            root.join("tests/interop/node/package.json").is_file(),
            "{root:?}"
        );
        assert!(root.join("crates/connkit-testkit").is_dir());
    }

    #[test]
    fn target_dir_is_absolute() {
        assert!(target_dir().expect("target dir").is_absolute());
    }
}
