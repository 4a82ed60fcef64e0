//! Unix socket files: bind with a safe stale-file reclaim, set the mode, remove on drop.

use crate::error::{Error, ErrorKind, Result};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

/// A socket file bound by [`bind_socket_file`]. Dropping it removes the file, but only if
/// the path still holds that same socket (same device and inode): a file another process
/// put there since is left alone.
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The path of the socket file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino => {
                if let Err(e) = std::fs::remove_file(&self.path) {
                    warn!(path = %self.path.display(), error = %e, "could not remove the socket file");
                }
            }
            _ => {}
        }
    }
}

/// Bind a Unix socket at `path` for a server that wants the raw accepted streams, with the
/// same socket-file rules as [`listen`](super::listen) on a `unix://` endpoint:
///
/// - a socket file left behind by a dead server is reclaimed: an existing path is removed
///   only when it **is a socket** and a probe connection to it is refused (the probe is
///   closed at once);
/// - a live server's socket, or any file that is not a socket, is left alone and reported
///   as [`ErrorKind::AddrInUse`];
/// - `mode` (for example `0o600`) is applied to the socket file when given;
/// - the returned [`SocketFile`] removes the file when dropped.
///
/// The listener is returned in non-blocking mode, ready for
/// `tokio::net::UnixListener::from_std`. Cancel safe: the only wait is the probe of an
/// existing socket, before anything is removed or bound.
///
/// # Errors
/// [`ErrorKind::AddrInUse`], or the I/O error of `bind`, of the probe or of setting the mode
/// (then the file is removed again).
pub async fn bind_socket_file(
    path: &Path,
    mode: Option<u32>,
) -> Result<(std::os::unix::net::UnixListener, SocketFile)> {
    let (listener, file) = bind(path, mode).await?;
    let listener = listener
        .into_std()
        .map_err(|e| Error::io(format!("detaching the listener of {}", path.display()), e))?;
    Ok((listener, file))
}

/// [`bind_socket_file`] with the tokio listener, for [`listen`](super::listen).
pub(super) async fn bind(path: &Path, mode: Option<u32>) -> Result<(UnixListener, SocketFile)> {
    let shown = path.display();
    let listener = match UnixListener::bind(path) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            reclaim_stale(path).await?;
            UnixListener::bind(path).map_err(|e| Error::io(format!("binding unix://{shown}"), e))?
        }
        Err(e) => return Err(Error::io(format!("binding unix://{shown}"), e)),
    };
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::io(format!("reading {shown} after bind"), e))?;
    // Made before the mode is set, so that a failure there removes the file again.
    let file = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("setting mode {mode:o} on {shown}"), e))?;
    }
    Ok((listener, file))
}

/// The path exists: remove it only if it is a socket nobody answers on.
async fn reclaim_stale(path: &Path) -> Result<()> {
    let shown = path.display();
    let meta =
        std::fs::symlink_metadata(path).map_err(|e| Error::io(format!("inspecting {shown}"), e))?;
    if !meta.file_type().is_socket() {
        return Err(Error::new(
            ErrorKind::AddrInUse,
            format!("{shown} exists and is not a socket; refusing to remove it"),
        ));
    }
    match UnixStream::connect(path).await {
        Ok(probe) => {
            drop(probe); // closed at once: the live server sees a client come and go
            Err(Error::new(
                ErrorKind::AddrInUse,
                format!("a live server is listening on {shown}"),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            debug!(path = %shown, "removing a stale socket file");
            std::fs::remove_file(path)
                .map_err(|e| Error::io(format!("removing the stale socket {shown}"), e))
        }
        Err(e) => Err(Error::io(format!("probing {shown}"), e)),
    }
}
