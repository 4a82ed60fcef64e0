//! The IPC server: listens on a socket file, gives each client a UUID v4 id, delivers messages
//! by topic, and sends to one client or broadcasts to all.

use crate::conn::{self, AbortOnDrop, ConnOptions, FlushOnPending, Outbox, SendError};
use crate::error::{BoxError, Error, Result};
use crate::router::{HandlerGuard, Router, Slots, Subscription};
use crate::transcoder::{JsonTranscoder, Transcoder};
use crate::wire::EncodeError;
use crate::{ClientId, Incoming, Payload, Replier, Topic};
use bytes::Bytes;
use connkit_core::ErrorKind;
use connkit_core::events::{DEFAULT_EVENT_CAPACITY, EventHub, EventStream};
use connkit_core::transport::{SocketFile, bind_socket_file};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, debug, info, warn};

/// What the server does when a client's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SlowClient {
    /// `send` and `broadcast` wait for room (the default). Memory stays bounded; a client that
    /// never reads stalls the senders that address it.
    #[default]
    Wait,
    /// Disconnect the client whose queue is full, with [`Error::SlowClient`]; senders never wait.
    Disconnect,
}

/// The server's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ServerState {
    /// Built, not listening yet.
    Idle,
    /// Accepting clients.
    Listening,
    /// `close` was called: no new clients; existing ones are being ended.
    Closing,
    /// Fully closed.
    Closed,
}

/// Server lifecycle and traffic, in the order they happen.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ServerEvent {
    /// The socket file is bound and accepting.
    Listening {
        /// The socket path.
        path: PathBuf,
    },
    /// A client connected.
    Connection {
        /// Its id.
        client: ClientId,
    },
    /// A message arrived (every message, whatever its topic).
    Message {
        /// The topic.
        topic: Topic,
        /// The payload (shared with handlers and subscriptions; parsed on demand).
        message: Payload,
        /// The sender.
        client: ClientId,
    },
    /// A client is gone (it closed, was dropped after an error, or the server closed).
    Disconnect {
        /// Its id.
        client: ClientId,
    },
    /// Something failed; `client` says which connection, if any. The server carries on.
    Error {
        /// The client concerned.
        client: Option<ClientId>,
        /// What went wrong.
        error: Arc<Error>,
    },
    /// The server has closed and every client is gone.
    Close,
}

/// Options for a [`Server`]; [`listen`](Self::listen) starts it.
#[derive(Clone)]
#[must_use]
pub struct ServerOptions {
    path: PathBuf,
    transcoder: Arc<dyn Transcoder>,
    mode: Option<u32>,
    max_frame_len: usize,
    client_queue: usize,
    slow_client: SlowClient,
    close_grace: Duration,
    event_capacity: usize,
    subscription_capacity: usize,
}

impl fmt::Debug for ServerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerOptions")
            .field("path", &self.path)
            .field("transcoder", &self.transcoder)
            .field("mode", &self.mode)
            .field("max_frame_len", &self.max_frame_len)
            .field("client_queue", &self.client_queue)
            .field("slow_client", &self.slow_client)
            .field("close_grace", &self.close_grace)
            .finish_non_exhaustive()
    }
}

impl ServerOptions {
    /// Options for a server on the socket file `path`, with the defaults: JSON transcoder,
    /// mode from the umask, 16 MiB frames, 1024 queued messages per client,
    /// [`SlowClient::Wait`], a 5 s close grace period.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            transcoder: Arc::new(JsonTranscoder),
            mode: None,
            max_frame_len: crate::DEFAULT_MAX_FRAME_LEN,
            client_queue: 1024,
            slow_client: SlowClient::Wait,
            close_grace: Duration::from_secs(5),
            event_capacity: DEFAULT_EVENT_CAPACITY,
            subscription_capacity: 1024,
        }
    }

    /// The codec (default [`JsonTranscoder`]).
    pub fn transcoder(mut self, transcoder: impl Transcoder) -> Self {
        self.transcoder = Arc::new(transcoder);
        self
    }

    /// The permission bits of the socket file, e.g. `0o600` (default: the umask decides).
    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = Some(mode);
        self
    }

    /// The largest frame accepted from a client; a longer one closes that client
    /// (default 16 MiB).
    pub fn max_frame_len(mut self, len: usize) -> Self {
        self.max_frame_len = len;
        self
    }

    /// How many messages may wait to be written to one client (default 1024).
    pub fn client_queue(mut self, messages: usize) -> Self {
        self.client_queue = messages.max(1);
        self
    }

    /// What to do with a client whose queue is full (default [`SlowClient::Wait`]).
    pub fn slow_client(mut self, policy: SlowClient) -> Self {
        self.slow_client = policy;
        self
    }

    /// How long [`Server::close`] lets clients finish before dropping them (default 5 s).
    pub fn close_grace(mut self, grace: Duration) -> Self {
        self.close_grace = grace;
        self
    }

    /// How many events a slow event subscriber may fall behind (default 256).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// How many messages a [`Subscription`] buffers before its client waits (default 1024).
    pub fn subscription_capacity(mut self, capacity: usize) -> Self {
        self.subscription_capacity = capacity.max(1);
        self
    }

    /// A server that is not listening yet: subscribe to events and topics, then call
    /// [`Server::listen`].
    pub fn build(self) -> Server {
        let hub = EventHub::new(ServerState::Idle, self.event_capacity);
        let router = Arc::new(Router::new(self.subscription_capacity));
        let shared = Arc::new(Shared {
            opts: self,
            hub,
            clients: Mutex::new(HashMap::new()),
            router,
            stop_accept: CancellationToken::new(),
            stop_clients: CancellationToken::new(),
            tasks: TaskTracker::new(),
            closing: AtomicBool::new(false),
        });
        Server {
            handle: Arc::new(Handle { shared }),
        }
    }

    /// Build and start listening.
    ///
    /// # Errors
    /// As [`Server::listen`].
    pub async fn listen(self) -> Result<Server> {
        let server = self.build();
        server.listen().await?;
        Ok(server)
    }
}

/// One connected client. Shared by the client map and by every [`Incoming`] from it, so a
/// reply needs no lookup.
pub(crate) struct ClientEntry {
    id: ClientId,
    outbox: Arc<Outbox>,
    kick: CancellationToken,
    /// The server, for replies (an `Incoming` holds the entry only: one count per message).
    pub(crate) server: Weak<Shared>,
}

pub(crate) struct Shared {
    opts: ServerOptions,
    hub: EventHub<ServerState, ServerEvent>,
    clients: Mutex<HashMap<ClientId, Arc<ClientEntry>>>,
    router: Arc<Router>,
    stop_accept: CancellationToken,
    stop_clients: CancellationToken,
    tasks: TaskTracker,
    /// Set with the state `Closing` (and kept through `Closed`): read by every send without
    /// the state's lock.
    closing: AtomicBool,
}

/// The user-facing handle's owner: dropping the last [`Server`] clone shuts the server down.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.stop_accept.cancel();
        self.shared.stop_clients.cancel();
    }
}

/// A running (or not yet started) IPC server. Cheap to clone; dropping the last clone stops
/// it at once (use [`close`](Self::close) for a graceful stop).
#[derive(Clone)]
pub struct Server {
    handle: Arc<Handle>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.handle.shared;
        f.debug_struct("Server")
            .field("path", &s.opts.path)
            .field("state", &s.hub.current_state())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Server {
    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// Bind the socket file and start accepting clients. A stale socket file left by a dead
    /// server is reclaimed; a live server's socket or a regular file is never touched.
    ///
    /// # Errors
    /// [`Error::AlreadyListening`] when called twice or after close; [`Error::Transport`] when
    /// binding fails (for example [`ErrorKind::AddrInUse`]).
    pub async fn listen(&self) -> Result<()> {
        let shared = self.shared();
        if !shared.hub.modify_state(|s| {
            if *s == ServerState::Idle {
                *s = ServerState::Listening;
                true
            } else {
                false
            }
        }) {
            return Err(Error::AlreadyListening);
        }
        let o = &shared.opts;
        let bound = match ConnOptions::new(&*o.transcoder, o.max_frame_len, o.client_queue) {
            Ok(copts) => bind(&o.path, o.mode)
                .await
                .map(|(listener, file)| (listener, file, copts)),
            Err(e) => Err(e),
        };
        let (listener, file, copts) = match bound {
            Ok(b) => b,
            Err(e) => {
                shared.hub.set_state(ServerState::Idle);
                return Err(e.into());
            }
        };
        info!(path = %o.path.display(), "ipc server listening");
        shared.hub.emit(ServerEvent::Listening {
            path: o.path.clone(),
        });
        let span = tracing::info_span!("connkit.ipc.server", path = %o.path.display());
        shared
            .tasks
            .spawn(accept_loop(Arc::clone(shared), listener, file, copts).instrument(span));
        Ok(())
    }

    /// The socket file path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.shared().opts.path
    }

    /// Lifecycle and traffic events from now on.
    #[must_use]
    pub fn events(&self) -> EventStream<ServerEvent> {
        self.shared().hub.subscribe()
    }

    /// The current state, kept up to date.
    #[must_use]
    pub fn state(&self) -> watch::Receiver<ServerState> {
        self.shared().hub.state()
    }

    /// Every message on `topic` (or on every topic with `None`), reliably: when this
    /// subscription's buffer is full, the sending client waits. Drop it to unsubscribe.
    #[must_use]
    pub fn subscribe(&self, topic: Option<&str>) -> Subscription {
        self.shared().router.subscribe(topic)
    }

    /// Run `handler` for each message on `topic` (or every topic with `None`), in order, on
    /// the receiving client's task. If it returns an error or panics, that client is
    /// disconnected (with [`ServerEvent::Error`]); the server and other clients carry on.
    ///
    /// The handler stays installed while the returned guard lives; call
    /// [`HandlerGuard::detach`] to keep it for the server's lifetime.
    pub fn on<F, Fut, E>(&self, topic: Option<&str>, handler: F) -> HandlerGuard
    where
        F: Fn(Incoming) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        self.shared().router.on(topic, handler)
    }

    /// The ids of the connected clients.
    #[must_use]
    pub fn clients(&self) -> Vec<ClientId> {
        lock(&self.shared().clients).keys().copied().collect()
    }

    /// Send one message to one client.
    ///
    /// Cancel safe: if the future is dropped before completing, the message was not queued.
    ///
    /// # Errors
    /// In the reference's order: [`Error::SendAfterClose`], [`Error::BadClient`],
    /// [`Error::Encode`]; then [`Error::SlowClient`] under [`SlowClient::Disconnect`].
    pub async fn send(
        &self,
        topic: &str,
        message: impl Into<Payload>,
        client: ClientId,
    ) -> Result<()> {
        self.shared().send(topic, &message.into(), client).await
    }

    /// Send one message to every connected client; it is encoded once. Returns how many
    /// clients it was queued for. A client that fails is reported as an event, not here.
    ///
    /// # Errors
    /// [`Error::SendAfterClose`] or [`Error::Encode`] (even with no client connected).
    pub async fn broadcast(&self, topic: &str, message: impl Into<Payload>) -> Result<usize> {
        let shared = self.shared();
        shared.check_open(topic)?;
        let bytes = shared.encode(topic, &message.into())?;
        let targets: Vec<Arc<ClientEntry>> = lock(&shared.clients).values().cloned().collect();
        let mut delivered = 0;
        for entry in targets {
            let copy = |buf: &mut Vec<u8>| {
                buf.extend_from_slice(&bytes);
                Ok(())
            };
            if shared.deliver(&entry, topic, copy).await.is_ok() {
                delivered += 1;
            }
        }
        Ok(delivered)
    }

    /// Disconnect one client at once.
    ///
    /// # Errors
    /// [`Error::BadClient`] when no such client is connected.
    pub fn disconnect(&self, client: ClientId) -> Result<()> {
        match lock(&self.shared().clients).get(&client) {
            Some(e) => {
                e.kick.cancel();
                Ok(())
            }
            None => Err(Error::BadClient { client }),
        }
    }

    /// Close gracefully: stop accepting (the socket file is removed at once), let each client
    /// receive what is queued for it and end its side, then, after the grace period, drop the
    /// clients that are still there. Emits [`ServerEvent::Close`] once. Idempotent; a second
    /// call waits for the first to finish.
    ///
    /// Cancel safe: the close goes on in the background if this future is dropped.
    pub async fn close(&self) {
        let shared = Arc::clone(self.shared());
        let mut state = shared.hub.state();
        let first = shared.hub.modify_state(|s| match s {
            ServerState::Idle | ServerState::Listening => {
                *s = ServerState::Closing;
                shared.closing.store(true, Ordering::Release);
                true
            }
            _ => false,
        });
        if first {
            let closer = Arc::clone(&shared);
            tokio::spawn(async move { closer.close_gracefully().await });
        }
        let _ = state.wait_for(|s| *s == ServerState::Closed).await;
    }
}

impl Shared {
    fn check_open(&self, topic: &str) -> Result<()> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Error::SendAfterClose {
                topic: topic.to_owned(),
            });
        }
        Ok(())
    }

    fn encode(&self, topic: &str, message: &Payload) -> Result<Bytes> {
        crate::encode_frame(&*self.opts.transcoder, topic, message)
    }

    pub(crate) async fn send(
        &self,
        topic: &str,
        message: &Payload,
        client: ClientId,
    ) -> Result<()> {
        self.check_open(topic)?;
        let entry = lock(&self.clients)
            .get(&client)
            .cloned()
            .ok_or(Error::BadClient { client })?;
        self.send_to(&entry, topic, message).await
    }

    /// Send to a client known by its entry (a reply): the checks of [`send`](Self::send)
    /// without the lookup.
    pub(crate) async fn send_to(
        &self,
        entry: &ClientEntry,
        topic: &str,
        message: &Payload,
    ) -> Result<()> {
        self.check_open(topic)?;
        // A closed outbox refuses the frame: `BadClient`, before anything is encoded.
        let transcoder = &*self.opts.transcoder;
        self.deliver(entry, topic, |buf| transcoder.encode(topic, message, buf))
            .await
    }

    /// Queue one frame for `entry`, encoded by `encode` straight into its outbox.
    async fn deliver(
        &self,
        entry: &ClientEntry,
        topic: &str,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
    ) -> Result<()> {
        let client = entry.id;
        let res = match self.opts.slow_client {
            SlowClient::Wait => entry.outbox.send(encode).await,
            SlowClient::Disconnect => entry.outbox.try_send(encode),
        };
        match res {
            Ok(()) => Ok(()),
            Err(SendError::Full) => {
                entry.kick.cancel();
                let err = Error::SlowClient { client };
                warn!(%client, "disconnecting a slow client");
                self.hub.emit(ServerEvent::Error {
                    client: Some(client),
                    error: Arc::new(Error::SlowClient { client }),
                });
                Err(err)
            }
            Err(SendError::Closed) => Err(Error::BadClient { client }),
            Err(SendError::Encode(source)) => Err(Error::Encode {
                topic: topic.to_owned(),
                source,
            }),
            Err(SendError::Invalid(e)) => Err(Error::Transport(connkit_core::Error::with_source(
                ErrorKind::InvalidMessage,
                "cannot frame the message",
                e,
            ))),
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        topic: Topic,
        message: Payload,
        entry: &Arc<ClientEntry>,
        slots: &mut Slots,
    ) -> Result<()> {
        if self.hub.subscriber_count() > 0 {
            self.hub.emit(ServerEvent::Message {
                topic: topic.clone(),
                message: message.clone(),
                client: entry.id,
            });
        }
        let incoming = Incoming {
            topic,
            message,
            client: Some(entry.id),
            replier: Replier::Server(Arc::clone(entry)),
        };
        self.router.dispatch(incoming, slots).await
    }

    async fn close_gracefully(self: Arc<Self>) {
        self.stop_accept.cancel();
        for entry in lock(&self.clients).values() {
            entry.outbox.close();
        }
        self.tasks.close();
        if tokio::time::timeout(self.opts.close_grace, self.tasks.wait())
            .await
            .is_err()
        {
            debug!("close grace period over; dropping the remaining clients");
            self.stop_clients.cancel();
            self.tasks.wait().await;
        }
        self.hub.set_state(ServerState::Closed);
        self.hub.emit(ServerEvent::Close);
        info!(path = %self.opts.path.display(), "ipc server closed");
    }
}

/// Bind the socket file by connkit-core's rules (stale-file reclaim, mode, removal on drop)
/// and hand the listener to tokio.
async fn bind(path: &Path, mode: Option<u32>) -> connkit_core::Result<(UnixListener, SocketFile)> {
    let (listener, file) = bind_socket_file(path, mode).await?;
    let listener = UnixListener::from_std(listener).map_err(|e| {
        connkit_core::Error::io(format!("registering the listener of {}", path.display()), e)
    })?;
    Ok((listener, file))
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: UnixListener,
    file: SocketFile,
    copts: ConnOptions,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.stop_accept.cancelled() => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, _)) => {
                let s = Arc::clone(&shared);
                shared.tasks.spawn(serve_client(s, stream, copts.clone()));
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                let e = connkit_core::Error::io(
                    format!("accepting on {}", shared.opts.path.display()),
                    e,
                );
                shared.hub.emit(ServerEvent::Error {
                    client: None,
                    error: Arc::new(e.into()),
                });
                // Do not spin on a persistent error such as EMFILE.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    drop(file); // removes the socket file
}

async fn serve_client(shared: Arc<Shared>, stream: UnixStream, copts: ConnOptions) {
    let client = ClientId::new();
    let span = tracing::debug_span!("connkit.ipc.client", %client);
    let (mut rx, outbox) = conn::split(stream, &copts);
    let abort = AbortOnDrop(Arc::clone(&outbox));
    let serve = async move {
        let kick = shared.stop_clients.child_token();
        let entry = Arc::new(ClientEntry {
            id: client,
            outbox: Arc::clone(&abort.0),
            kick: kick.clone(),
            server: Arc::downgrade(&shared),
        });
        lock(&shared.clients).insert(client, Arc::clone(&entry));
        debug!("client connected");
        shared.hub.emit(ServerEvent::Connection { client });
        let mut decoder = shared.opts.transcoder.decoder();
        let mut slots = Slots::default();
        let kicked = kick.cancelled();
        tokio::pin!(kicked);
        let mut frames: u32 = 0;
        let failure: Option<Error> = loop {
            // Frames first: polling the cancellation takes a lock, so while frames keep
            // coming it is checked every 32 frames only.
            frames = frames.wrapping_add(1);
            if frames.is_multiple_of(32) && kick.is_cancelled() {
                break None;
            }
            let frame = tokio::select! {
                biased;
                f = rx.next() => f,
                () = &mut kicked => break None,
            };
            match frame {
                None => break None,
                // A vanished peer (reset, broken pipe) is just a disconnect.
                Some(Err(e)) if e.kind() == ErrorKind::Io => {
                    debug!(error = %e, "client connection lost");
                    break None;
                }
                Some(Err(e)) => break Some(e.into()),
                Some(Ok(bytes)) => match decoder.decode(bytes) {
                    Err(source) => {
                        break Some(Error::Decode {
                            from: client.to_string(),
                            source,
                        });
                    }
                    Ok(env) => {
                        if let Err(e) = shared
                            .dispatch(env.topic, env.message, &entry, &mut slots)
                            .await
                        {
                            break Some(e);
                        }
                    }
                },
            }
        };
        lock(&shared.clients).remove(&client);
        drop(entry);
        drop(abort); // the connection ends with its reader
        drop(rx);
        if let Some(error) = failure {
            warn!(error = %error, "dropping client");
            shared.hub.emit(ServerEvent::Error {
                client: Some(client),
                error: Arc::new(error),
            });
        }
        debug!("client disconnected");
        shared.hub.emit(ServerEvent::Disconnect { client });
    };
    FlushOnPending::new(outbox, serve).instrument(span).await;
}
