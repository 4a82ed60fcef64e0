//! A TCP fault proxy for reconnect tests.
//!
//! Put a [`FaultProxy`] between a client and its server and make the network
//! misbehave on cue:
//!
//! | call | what the client sees |
//! |---|---|
//! | [`cut_all`](FaultProxy::cut_all) | every open connection reset (RST) at once |
//! | [`set_refuse(true)`](FaultProxy::set_refuse) | new connections accepted, then closed at once |
//! | [`stop_listening`](FaultProxy::stop_listening) | new connections refused (`ECONNREFUSED`) |
//! | [`pause`](FaultProxy::pause) | a black hole: connections stay open, no bytes move either way |
//! | [`resume`](FaultProxy::resume) | bytes held during the pause are delivered, traffic flows again |
//!
//! ```no_run
//! # async fn example(server: std::net::SocketAddr) -> std::io::Result<()> {
//! use connkit_testkit::FaultProxy;
//!
//! let proxy = FaultProxy::start(server).await?;
//! // point the client at proxy.addr() ...
//! proxy.cut_all(); // the client should reconnect
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// Forwarding buffer size per direction.
const BUF_SIZE: usize = 16 * 1024;

/// A TCP proxy on `127.0.0.1:<ephemeral port>` that forwards to one upstream
/// address and injects faults on demand. See the [module docs](self).
///
/// Dropping the proxy stops listening and resets every connection.
#[derive(Debug)]
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    accept_task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    refuse: AtomicBool,
    paused: watch::Sender<bool>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    conns: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl Shared {
    fn conns(&self) -> MutexGuard<'_, HashMap<u64, oneshot::Sender<()>>> {
        self.conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl FaultProxy {
    /// Starts a proxy listening on `127.0.0.1:0` that forwards every accepted
    /// connection to `upstream` (connecting afresh for each one).
    ///
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    ///
    /// Binding the listening socket failed.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (paused, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            upstream,
            refuse: AtomicBool::new(false),
            paused,
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
        });
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        tracing::debug!(%addr, %upstream, "fault proxy started");
        Ok(FaultProxy {
            addr,
            upstream,
            shared,
            accept_task: Mutex::new(Some(task)),
        })
    }

    /// The address clients should connect to.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address connections are forwarded to.
    #[must_use]
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Number of connections currently open through the proxy.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.shared.conns().len()
    }

    /// Number of connections accepted since the proxy started, including
    /// those closed at once while refusing. Handy to assert that a client
    /// reconnected.
    #[must_use]
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Drops every current connection abruptly: both the client side and the
    /// upstream side are reset (RST), as if the link had died. New
    /// connections are still accepted.
    pub fn cut_all(&self) {
        let cut: Vec<_> = self.shared.conns().drain().collect();
        tracing::debug!(proxy = %self.addr, count = cut.len(), "cutting all connections");
        for (_, tx) in cut {
            // The connection may have ended on its own already.
            let _ = tx.send(());
        }
    }

    /// While `true`, new connections are accepted and closed at once, without
    /// contacting the upstream. Existing connections are not affected (combine
    /// with [`cut_all`](Self::cut_all) for a server restart).
    pub fn set_refuse(&self, refuse: bool) {
        self.shared.refuse.store(refuse, Ordering::SeqCst);
    }

    /// Stops forwarding bytes in both directions without closing anything:
    /// the connections become a black hole until [`resume`](Self::resume).
    /// Bytes already read are held, not dropped; TCP backpressure stops the
    /// senders once the buffers fill.
    pub fn pause(&self) {
        self.shared.paused.send_replace(true);
    }

    /// Resumes forwarding after [`pause`](Self::pause); held bytes are
    /// delivered in order.
    pub fn resume(&self) {
        self.shared.paused.send_replace(false);
    }

    /// Whether the proxy is paused.
    #[must_use]
    pub fn is_paused(&self) -> bool {
        *self.shared.paused.borrow()
    }

    /// Closes the listening socket, so new connections are refused by the OS
    /// (`ECONNREFUSED`), as when the server is down. Connections already
    /// accepted are not affected; ones still in the kernel's backlog are
    /// reset. Idempotent.
    pub async fn stop_listening(&self) {
        let task = self.take_accept_task();
        if let Some(task) = task {
            task.abort();
            // Awaiting the aborted task guarantees the listener is closed.
            let _ = task.await;
        }
    }

    /// Listens again on the same address after
    /// [`stop_listening`](Self::stop_listening). Does nothing if already
    /// listening.
    ///
    /// # Errors
    ///
    /// Binding the address again failed (for example, something else took
    /// the port in the meantime).
    pub async fn start_listening(&self) -> io::Result<()> {
        let mut slot = self.accept_task_slot();
        if slot.as_ref().is_some_and(|t| !t.is_finished()) {
            return Ok(());
        }
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(self.addr)?;
        let listener = socket.listen(1024)?;
        *slot = Some(tokio::spawn(accept_loop(
            listener,
            Arc::clone(&self.shared),
        )));
        Ok(())
    }

    fn accept_task_slot(&self) -> MutexGuard<'_, Option<JoinHandle<()>>> {
        self.accept_task
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn take_accept_task(&self) -> Option<JoinHandle<()>> {
        self.accept_task_slot().take()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(task) = self.take_accept_task() {
            task.abort();
        }
        self.cut_all();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // Usually EMFILE or a connection reset before accept: keep going.
                tracing::debug!(error = %e, "fault proxy accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.refuse.load(Ordering::SeqCst) {
            tracing::debug!(%peer, "fault proxy refusing connection");
            drop(client);
            continue;
        }
        let id = shared.next_id.fetch_add(1, Ordering::SeqCst);
        let (cut_tx, cut_rx) = oneshot::channel();
        shared.conns().insert(id, cut_tx);
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            run_connection(client, &shared, cut_rx).await;
            shared.conns().remove(&id);
        });
    }
}

async fn run_connection(mut client: TcpStream, shared: &Shared, cut: oneshot::Receiver<()>) {
    let _ = client.set_nodelay(true);
    let mut upstream: Option<TcpStream> = None;
    let cut_now = {
        let work = async {
            let stream = TcpStream::connect(shared.upstream).await?;
            let _ = stream.set_nodelay(true);
            let stream = upstream.insert(stream);
            let (cr, cw) = client.split();
            let (ur, uw) = stream.split();
            tokio::try_join!(
                pump(cr, uw, shared.paused.subscribe()),
                pump(ur, cw, shared.paused.subscribe()),
            )
            .map(|_| ())
        };
        tokio::select! {
            // Err means the proxy (and its sender) went away: treat it as a cut.
            _ = cut => true,
            result = work => match result {
                Ok(()) => false,
                Err(e) => {
                    tracing::debug!(error = %e, "fault proxy connection failed; resetting");
                    true
                }
            },
        }
    };
    if cut_now {
        reset(&client);
        if let Some(upstream) = &upstream {
            reset(upstream);
        }
    }
}

/// Arranges for the socket to send RST instead of FIN when dropped.
fn reset(stream: &TcpStream) {
    // A zero linger never blocks on drop; `set_zero_linger` would say the
    // same but needs a newer tokio than the workspace's minimum.
    #[allow(deprecated)]
    let _ = stream.set_linger(Some(Duration::ZERO));
}

/// Copies `from` to `to` until EOF, waiting while paused, then half-closes
/// `to`.
async fn pump<R, W>(mut from: R, mut to: W, mut paused: watch::Receiver<bool>) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF_SIZE];
    loop {
        wait_unpaused(&mut paused).await;
        let n = from.read(&mut buf).await?;
        if n == 0 {
            // Peer finished sending: pass the half-close on.
            let _ = to.shutdown().await;
            return Ok(());
        }
        wait_unpaused(&mut paused).await;
        to.write_all(&buf[..n]).await?;
    }
}

async fn wait_unpaused(paused: &mut watch::Receiver<bool>) {
    // Err: the sender (the proxy) is gone; the connection is being torn down.
    let _ = paused.wait_for(|p| !*p).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::within;

    /// A tokio echo server on 127.0.0.1:0.
    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind echo");
        let addr = listener.local_addr().expect("echo addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn roundtrip(stream: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(msg).await?;
        let mut buf = vec![0; msg.len()];
        stream.read_exact(&mut buf).await?;
        Ok(buf)
    }

    async fn wait_until(mut f: impl FnMut() -> bool) {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Reads until EOF or error; true if the connection ended.
    async fn ends_soon(stream: &mut TcpStream) -> bool {
        let mut buf = [0u8; 64];
        matches!(
            tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    #[tokio::test]
    async fn forwards_bytes_both_ways_and_counts_connections() {
        within(20, async {
            let proxy = FaultProxy::start(echo_server().await).await.expect("proxy");
            assert_eq!(proxy.connections(), 0);
            let mut a = TcpStream::connect(proxy.addr()).await.expect("connect a");
            let mut b = TcpStream::connect(proxy.addr()).await.expect("connect b");
            assert_eq!(roundtrip(&mut a, b"hello").await.expect("a"), b"hello");
            assert_eq!(roundtrip(&mut b, b"world").await.expect("b"), b"world");
            let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            assert_eq!(roundtrip(&mut a, &big).await.expect("big"), big);
            assert_eq!(proxy.connections(), 2);
            assert_eq!(proxy.accepted(), 2);
            drop(a);
            wait_until(|| proxy.connections() == 1).await;
        })
        .await;
    }

    #[tokio::test]
    async fn cut_all_resets_open_connections_and_new_ones_still_work() {
        within(20, async {
            let proxy = FaultProxy::start(echo_server().await).await.expect("proxy");
            let mut a = TcpStream::connect(proxy.addr()).await.expect("connect");
            roundtrip(&mut a, b"x").await.expect("before cut");
            proxy.cut_all();
            assert_eq!(proxy.connections(), 0);
            assert!(ends_soon(&mut a).await, "cut connection should end");
            let mut b = TcpStream::connect(proxy.addr()).await.expect("reconnect");
            assert_eq!(
                roundtrip(&mut b, b"again").await.expect("after cut"),
                b"again"
            );
            assert_eq!(proxy.connections(), 1);
        })
        .await;
    }

    #[tokio::test]
    async fn refusing_closes_new_connections_at_once() {
        within(20, async {
            let proxy = FaultProxy::start(echo_server().await).await.expect("proxy");
            let mut old = TcpStream::connect(proxy.addr()).await.expect("connect");
            roundtrip(&mut old, b"1").await.expect("old works");
            proxy.set_refuse(true);
            let mut refused = TcpStream::connect(proxy.addr()).await.expect("tcp connect");
            assert!(
                ends_soon(&mut refused).await,
                "refused connection should close"
            );
            assert_eq!(
                roundtrip(&mut old, b"2").await.expect("old unaffected"),
                b"2"
            );
            proxy.set_refuse(false);
            let mut fresh = TcpStream::connect(proxy.addr()).await.expect("connect");
            assert_eq!(roundtrip(&mut fresh, b"3").await.expect("fresh"), b"3");
            assert_eq!(proxy.accepted(), 3);
        })
        .await;
    }

    #[tokio::test]
    async fn pause_black_holes_traffic_and_resume_delivers_it() {
        within(20, async {
            let proxy = FaultProxy::start(echo_server().await).await.expect("proxy");
            let mut a = TcpStream::connect(proxy.addr()).await.expect("connect");
            roundtrip(&mut a, b"warm").await.expect("warm up");
            proxy.pause();
            assert!(proxy.is_paused());
            a.write_all(b"held").await.expect("write while paused");
            let mut buf = [0u8; 4];
            let read =
                tokio::time::timeout(Duration::from_millis(300), a.read_exact(&mut buf)).await;
            assert!(read.is_err(), "no bytes should arrive while paused");
            assert_eq!(proxy.connections(), 1, "pause must not close connections");
            proxy.resume();
            a.read_exact(&mut buf)
                .await
                .expect("held bytes after resume");
            assert_eq!(&buf, b"held");
        })
        .await;
    }

    #[tokio::test]
    async fn stop_listening_refuses_and_start_listening_reopens_the_same_port() {
        within(20, async {
            let proxy = FaultProxy::start(echo_server().await).await.expect("proxy");
            let mut kept = TcpStream::connect(proxy.addr()).await.expect("connect");
            // Make sure it was accepted: backlog entries die with the listener.
            roundtrip(&mut kept, b"a").await.expect("accepted");
            proxy.stop_listening().await;
            proxy.stop_listening().await;
            let err = TcpStream::connect(proxy.addr())
                .await
                .expect_err("should be refused");
            assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
            assert_eq!(roundtrip(&mut kept, b"k").await.expect("kept works"), b"k");
            proxy.start_listening().await.expect("relisten");
            proxy.start_listening().await.expect("idempotent");
            let mut fresh = TcpStream::connect(proxy.addr())
                .await
                .expect("connect again");
            assert_eq!(roundtrip(&mut fresh, b"f").await.expect("fresh"), b"f");
        })
        .await;
    }

    #[tokio::test]
    async fn unreachable_upstream_closes_the_client() {
        within(20, async {
            // Bind then drop to get a port with (very likely) nothing on it.
            let dead = {
                let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .expect("bind");
                l.local_addr().expect("addr")
            };
            let proxy = FaultProxy::start(dead).await.expect("proxy");
            let mut a = TcpStream::connect(proxy.addr()).await.expect("connect");
            assert!(ends_soon(&mut a).await);
            wait_until(|| proxy.connections() == 0).await;
        })
        .await;
    }

    #[tokio::test]
    async fn dropping_the_proxy_resets_connections() {
        within(20, async {
            let proxy = FaultProxy::start(echo_server().await).await.expect("proxy");
            let mut a = TcpStream::connect(proxy.addr()).await.expect("connect");
            roundtrip(&mut a, b"x").await.expect("works");
            drop(proxy);
            assert!(ends_soon(&mut a).await);
        })
        .await;
    }
}
