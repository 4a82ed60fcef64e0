//! Addresses for tests: TCP ports and Unix socket paths.
//!
//! Prefer letting the server bind port 0 and report the port it got (Node
//! scripts print it on their `READY` line). [`free_tcp_port`] exists for the
//! rare case where a port must be known before the server starts; it is racy.

use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// Longest Unix socket path (in bytes) we hand out. `sun_path` is 108 bytes
/// on Linux and 104 on macOS and the BSDs, including the trailing NUL.
pub const MAX_SOCKET_PATH: usize = 100;

/// Longest tag kept in a socket file name.
const MAX_TAG: usize = 32;

/// Asks the OS for a currently free TCP port on 127.0.0.1.
///
/// **Racy**: the port is free when this returns, but anything may take it
/// before the caller binds it. Prefer binding port 0 and reading the port back.
///
/// # Errors
///
/// Those of binding a socket on 127.0.0.1.
pub fn free_tcp_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// A fresh, short Unix socket path: `/tmp/ck-XXXXXX/<tag>.sock`, in a new
/// directory that is removed when the returned [`TempDir`] is dropped (keep
/// it alive as long as the socket is in use).
///
/// Unique per call, also across concurrently running test binaries. The tag
/// is reduced to `[A-Za-z0-9_-]` and cut to 32 characters. `/tmp` is used
/// rather than `$TMPDIR` because socket paths must stay under ~100 bytes;
/// when `/tmp` does not exist the system temp directory is used instead.
///
/// # Errors
///
/// Creating the directory failed, or the resulting path would be longer than
/// [`MAX_SOCKET_PATH`] bytes.
pub fn try_unique_socket_path(tag: &str) -> io::Result<(TempDir, PathBuf)> {
    let base = if Path::new("/tmp").is_dir() {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new().prefix("ck-").tempdir_in(&base)?;
    let path = dir.path().join(format!("{}.sock", sanitize_tag(tag)));
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "socket path {} is {len} bytes, over the {MAX_SOCKET_PATH}-byte limit",
                path.display()
            ),
        ));
    }
    Ok((dir, path))
}

/// Like [`try_unique_socket_path`], for tests.
///
/// # Panics
///
/// This is a test helper: it panics with the reason when no path can be made.
#[must_use]
#[track_caller]
pub fn unique_socket_path(tag: &str) -> (TempDir, PathBuf) {
    match try_unique_socket_path(tag) {
        Ok(pair) => pair,
        Err(e) => panic!("cannot make a unique socket path for {tag:?}: {e}"),
    }
}

fn sanitize_tag(tag: &str) -> String {
    let cleaned: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(MAX_TAG)
        .collect();
    if cleaned.is_empty() {
        "s".to_owned()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_paths_are_short_unique_and_cleaned_up() {
        let (dir_a, a) = unique_socket_path("ipc server/with spaces and a very long tag indeed!!");
        let (_dir_b, b) = unique_socket_path("ipc server/with spaces and a very long tag indeed!!");
        assert_ne!(a, b);
        assert!(a.as_os_str().len() <= MAX_SOCKET_PATH, "{a:?}");
        let name = a.file_name().and_then(|n| n.to_str()).expect("utf-8 name");
        assert!(name.ends_with(".sock"));
        assert!(!name.contains(' ') && !name.contains('/'));
        assert!(a.parent().is_some_and(Path::is_dir));
        let parent = a.parent().map(Path::to_path_buf).expect("parent");
        drop(dir_a);
        assert!(!parent.exists());
    }

    #[test]
    fn empty_tag_still_gives_a_name() {
        let (_dir, p) = unique_socket_path("");
        assert_eq!(p.file_name().and_then(|n| n.to_str()), Some("s.sock"));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_socket_can_be_bound_at_the_path() {
        let (_dir, p) = unique_socket_path("bind");
        let listener = tokio::net::UnixListener::bind(&p).expect("bind");
        let _client = tokio::net::UnixStream::connect(&p).await.expect("connect");
        let _server = listener.accept().await.expect("accept");
    }

    #[test]
    fn free_port_is_nonzero() {
        assert_ne!(free_tcp_port().expect("port"), 0);
    }
}
