//! A custom transcoder: one message per line, `topic`, a space, the JSON payload, `\n`.
//!
//! Such a server can be driven by hand with `nc -U path`. Node's socket-ipc only speaks the
//! default JSON transcoder, so both ends must use this one (here a connkit client and a raw
//! socket). Everything ends by itself.
//!
//! ```sh
//! cargo run --example ipc_custom_transcoder
//! ```

use bytes::Bytes;
use connkit::ipc::transcoder::{Decoder, Transcoder};
use connkit::ipc::wire::{DecodeError, EncodeError, Envelope};
use connkit::ipc::{ClientOptions, Payload, ServerOptions};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// `topic SP json LF`; a message without payload is just `topic LF`.
#[derive(Debug, Clone, Copy)]
struct Lines;

/// Decoders keep per-connection state; this format needs none.
#[derive(Debug)]
struct LineDecoder;

impl Transcoder for Lines {
    fn delimiter(&self) -> &[u8] {
        b"\n"
    }

    fn encode(&self, topic: &str, message: &Payload, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if topic.is_empty() || topic.contains([' ', '\n']) {
            return Err(EncodeError::new("a topic is one word"));
        }
        out.extend_from_slice(topic.as_bytes());
        // The payload's JSON text, as received or as written by connkit: no parse here.
        if let Some(json) = message.json_bytes() {
            out.push(b' ');
            out.extend_from_slice(json);
        }
        Ok(())
    }

    fn decoder(&self) -> Box<dyn Decoder> {
        Box::new(LineDecoder)
    }

    // `frames_exclude_delimiter` stays `false`: a payload received from a peer that writes
    // JSON with newlines in it (`{\n"a": 1\n}`) would break a line, so connkit searches
    // each frame for `\n` and refuses such a send instead of corrupting the stream.
}

impl Decoder for LineDecoder {
    fn decode(&mut self, frame: Bytes) -> Result<Envelope, DecodeError> {
        let space = frame.iter().position(|&b| b == b' ');
        let topic = &frame[..space.unwrap_or(frame.len())];
        let topic = std::str::from_utf8(topic)
            .map_err(|e| DecodeError::new(e.to_string(), &frame))?
            .into(); // a `Topic`: short ones are held inline
        let message = match space {
            // Checked once here, kept as a slice of the frame, parsed only if asked.
            Some(at) => Payload::from_json(frame.slice(at + 1..))?,
            None => Payload::absent(),
        };
        Ok(Envelope { topic, message })
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("connkit-ipc-lines-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("lines.sock");

    // `add [1,2,3]` is answered with `sum 6`.
    let server = ServerOptions::new(&path).transcoder(Lines).listen().await?;
    server
        .on(Some("add"), |m| async move {
            let numbers: Vec<f64> = m.message.deserialize()?;
            m.reply("sum", json!(numbers.iter().sum::<f64>())).await?;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .detach();

    // A connkit client with the same transcoder.
    let client = ClientOptions::new(&path)
        .transcoder(Lines)
        .connect()
        .await?;
    let mut sums = client.subscribe(Some("sum"));
    client.send("add", json!([1, 2, 3.5])).await?;
    let sum = sums.recv().await.ok_or("no reply")?;
    println!(
        "client: add [1,2,3.5] -> {} {}",
        sum.topic,
        sum.message.json().unwrap_or_default()
    );
    // A topic the format cannot carry is refused before anything is written.
    if let Err(e) = client.send("two words", json!(1)).await {
        let why = std::error::Error::source(&e)
            .map(ToString::to_string)
            .unwrap_or_default();
        println!("client: send(\"two words\") -> {e}: {why}");
    }

    // The same server from a raw socket, as `nc -U` would talk to it.
    let raw = tokio::net::UnixStream::connect(&path).await?;
    let (read, mut write) = raw.into_split();
    write.write_all(b"add [40,2]\n").await?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    println!("raw:    wrote {:?}, read {line:?}", "add [40,2]\n");

    client.close().await;
    drop(write);
    server.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
