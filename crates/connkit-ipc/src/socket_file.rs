//! Binding the socket file: reclaim a stale one safely, set its mode, remove it when done.
//!
//! The same rules as `connkit_core::transport::listen` for `unix://` endpoints (the IPC
//! server needs the raw stream of each accepted connection, which that listener does not
//! give out): an existing path is removed only when it **is a socket** and a probe connection
//! to it is refused; the probe is closed at once; a regular file is never removed.

use connkit_core::{Error, ErrorKind};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use tokio::net::{UnixListener, UnixStream};
use tracing::{debug, warn};

/// Removes the socket file on drop, if it is still the one this server created.
#[derive(Debug)]
pub(crate) struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
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

/// Bind `path`, reclaiming a stale socket file, and apply `mode`.
pub(crate) async fn bind(
    path: &Path,
    mode: Option<u32>,
) -> Result<(UnixListener, SocketFile), Error> {
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
    let guard = SocketFile {
        path: path.to_owned(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("setting mode {mode:o} on {shown}"), e))?;
    }
    Ok((listener, guard))
}

/// The path exists: remove it only if it is a socket nobody answers on.
async fn reclaim_stale(path: &Path) -> Result<(), Error> {
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
