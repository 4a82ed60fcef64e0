//! WebSocket handshakes (client and server) over an [`IoStream`].

use super::connection::ws_error;
use super::io::IoStream;
use super::options::TransportOptions;
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use std::sync::{Arc, OnceLock};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self};

pub(crate) fn config(opts: &TransportOptions) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(opts.max_message_len))
        .max_frame_size(Some(opts.max_message_len))
}

fn handshake_error(endpoint: &str, e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Http(resp) => Error::new(
            ErrorKind::Handshake,
            format!(
                "{endpoint} answered the WebSocket upgrade with HTTP {}",
                resp.status()
            ),
        ),
        tungstenite::Error::Protocol(p) => Error::with_source(
            ErrorKind::Handshake,
            format!("WebSocket handshake with {endpoint}"),
            p,
        ),
        other => ws_error(&format!("WebSocket handshake with {endpoint}"), other),
    }
}

/// Client upgrade: offers the configured subprotocol; returns the stream and the agreed one.
pub(crate) async fn client(
    endpoint: &Endpoint,
    io: IoStream,
    opts: &TransportOptions,
) -> Result<(WebSocketStream<IoStream>, Option<String>)> {
    let authority = endpoint.authority().unwrap_or_default();
    let path = endpoint.ws_path().unwrap_or("/");
    let url = format!("{}://{authority}{path}", endpoint.scheme());
    let mut request = url.as_str().into_client_request().map_err(|e| {
        Error::with_source(
            ErrorKind::InvalidEndpoint,
            format!("WebSocket URL {url}"),
            e,
        )
    })?;
    if let Some(p) = &opts.ws_subprotocol {
        let value = HeaderValue::from_str(p).map_err(|e| {
            Error::with_source(ErrorKind::InvalidConfig, format!("subprotocol `{p}`"), e)
        })?;
        request
            .headers_mut()
            .insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    let (ws, response) =
        tokio_tungstenite::client_async_with_config(request, io, Some(config(opts)))
            .await
            .map_err(|e| handshake_error(&url, e))?;
    let agreed = response
        .headers()
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok((ws, agreed))
}

/// Server upgrade: agrees to the configured subprotocol when offered, and answers 403 when it
/// is required and missing.
pub(crate) async fn server(
    io: IoStream,
    opts: &TransportOptions,
    peer: &str,
) -> Result<(WebSocketStream<IoStream>, Option<String>)> {
    let wanted = opts.ws_subprotocol.clone();
    let require = opts.ws_require_subprotocol;
    let agreed = Arc::new(OnceLock::new());
    let agreed_in = Arc::clone(&agreed);
    #[allow(
        clippy::result_large_err,
        reason = "the signature tungstenite's callback requires"
    )]
    let callback =
        move |req: &Request, mut resp: Response| -> std::result::Result<Response, ErrorResponse> {
            let Some(wanted) = wanted else {
                return Ok(resp);
            };
            let offered = req
                .headers()
                .get_all(header::SEC_WEBSOCKET_PROTOCOL)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|p| p.trim() == wanted);
            if offered {
                if let Ok(v) = HeaderValue::from_str(&wanted) {
                    resp.headers_mut().insert(header::SEC_WEBSOCKET_PROTOCOL, v);
                    let _ = agreed_in.set(wanted);
                }
                Ok(resp)
            } else if require {
                let mut err = ErrorResponse::new(Some(format!("subprotocol `{wanted}` required")));
                *err.status_mut() = StatusCode::FORBIDDEN;
                Err(err)
            } else {
                Ok(resp)
            }
        };
    let ws = tokio_tungstenite::accept_hdr_async_with_config(io, callback, Some(config(opts)))
        .await
        .map_err(|e| handshake_error(peer, e))?;
    Ok((ws, agreed.get().cloned()))
}
