//! Raw byte probes against the Rust server (and a raw peer against the Rust client): the
//! probe cases of the spec's `probe-tcp.out` and `ws-probe.out`, the rejection rules of §4.7,
//! and that bad input closes only the connection that sent it.

mod support;

use connkit_jstp::{Client, ClientOptions, Error};
use connkit_testkit::within;
use std::time::Duration;
use support::{Fixture, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A raw TCP peer speaking NUL-terminated frames.
struct Raw {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(f: &Fixture) -> Raw {
        let ep = f.endpoint(Transport::Tcp);
        let s = TcpStream::connect(ep.authority().unwrap()).await.unwrap();
        Raw { s, buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &str) {
        self.s.write_all(bytes.as_bytes()).await.unwrap();
    }

    /// The next frame, or `None` when the server closed the connection.
    async fn frame(&mut self) -> Option<String> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == 0) {
                let f: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(String::from_utf8(f[..i].to_vec()).unwrap());
            }
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    async fn expect(&mut self, want: &str) {
        assert_eq!(self.frame().await.as_deref(), Some(want));
    }

    async fn expect_closed(&mut self) {
        assert_eq!(self.frame().await, None);
    }

    async fn handshake(&mut self) {
        self.send("{handshake:[0,'testApp','1.0.0']}\0").await;
        let reply = self.frame().await.unwrap();
        assert!(reply.starts_with("{handshake:[0],ok:'"), "{reply}");
        assert_eq!(reply.len(), "{handshake:[0],ok:''}".len() + 36);
    }
}

#[tokio::test]
async fn tcp_probes_handshake_answers() {
    within(60, Box::pin(async {
        let f = Fixture::start().await;
        // anonymousExplicit, loginOk, loginBad, unknownStrategy, sessionUnknown
        let mut r = Raw::connect(&f).await;
        r.send("{handshake:[0,'testApp'],anonymous:[]}\0").await;
        assert!(r.frame().await.unwrap().starts_with("{handshake:[0],ok:'"));
        let mut r = Raw::connect(&f).await;
        r.send("{handshake:[0,'testApp'],login:['user','secret']}\0").await;
        assert!(r.frame().await.unwrap().starts_with("{handshake:[0],ok:'"));
        for (probe, answer) in [
            ("{handshake:[0,'testApp'],login:['user','x']}\0", "{handshake:[0],error:[11]}"),
            ("{handshake:[0,'testApp'],token:['abc']}\0", "{handshake:[0],error:[11]}"),
            (
                "{handshake:[0,'testApp'],session:['00000000-0000-4000-8000-000000000000',0]}\0",
                "{handshake:[0],error:[11]}",
            ),
            ("{handshake:[0,'testApp','^3.0.0']}\0", "{handshake:[0],error:[10]}"),
            ("{handshake:[0,'nope']}\0", "{handshake:[0],error:[10]}"),
        ] {
            let mut r = Raw::connect(&f).await;
            r.send(probe).await;
            r.expect(answer).await;
            r.expect_closed().await;
        }

        f.server.close().await;
    }))
    .await;
}

#[tokio::test]
async fn tcp_probes_before_and_around_the_handshake() {
    within(
        60,
        Box::pin(async {
            let f = Fixture::start().await;
            // callBeforeHandshake: closed without a reply.
            let mut r = Raw::connect(&f).await;
            r.send("{call:[1,'calculator'],answer:[]}\0").await;
            r.expect_closed().await;

            // secondHandshake: the first is answered, then the connection closes.
            let mut r = Raw::connect(&f).await;
            r.send("{handshake:[0,'testApp','1.0.0']}\0{handshake:[0,'testApp','1.0.0']}\0")
                .await;
            assert!(r.frame().await.unwrap().starts_with("{handshake:[0],ok:'"));
            r.expect_closed().await;

            // Rejected without closing: heartbeat, unknown kind, stray callback and pong,
            // event arguments that are not an array, malformed headers.
            let mut r = Raw::connect(&f).await;
            r.handshake().await;
            r.send(concat!(
                "{}\0",
                "{foo:[1]}\0",
                "{callback:[77],ok:[1]}\0",
                "{pong:[78]}\0",
                "{event:[1,'calculator'],hello:'x'}\0",
                "{call:5}\0",
                "{call:['x','calculator'],answer:[]}\0",
                "{call:[2,'calculator'],answer:[]}\0"
            ))
            .await;
            r.expect("{callback:[2],ok:[42]}").await;

            f.server.close().await;
        }),
    )
    .await;
}

#[tokio::test]
async fn tcp_probes_arguments_and_syntax() {
    within(60, Box::pin(async {
        let f = Fixture::start().await;
        let mut r = Raw::connect(&f).await;
        r.handshake().await;
        // Arguments: null, not an array, no verb → 17; negative ids echoed.
        r.send("{call:[3,'calculator'],answer:null}\0").await;
        r.expect("{callback:[3],error:[17]}").await;
        r.send("{call:[4,'calculator'],echo:5}\0").await;
        r.expect("{callback:[4],error:[17]}").await;
        r.send("{call:[5,'calculator']}\0").await;
        r.expect("{callback:[5],error:[17]}").await;
        r.send("{call:[-5,'calculator'],answer:[]}\0").await;
        r.expect("{callback:[-5],ok:[42]}").await;
        r.send("{call:[6,'noIface'],x:null}\0").await;
        r.expect("{callback:[6],error:[17]}").await;

        // lenientSyntax, holes, escapes, quoted keys, undefined.
        r.send(" /* c */ { call: [ 0x7 , \"calculator\" , ] , // line\n add: [ +0x10, .5, ], }\0")
            .await;
        r.expect("{callback:[7],ok:[16.5]}").await;
        r.send("{call:[8,'calculator'],echo:[[,1,,]]}\0").await;
        r.expect("{callback:[8],ok:[[,1,,]]}").await;
        r.send("{call:[9,'calculator'],echo:['\\x41\\u0042\\u{1F600}\\ud83d\\ude00\\101\\0\\'\\\"']}\0")
            .await;
        r.expect("{callback:[9],ok:['AB😀😀A\\u0000\\'\\\"']}").await;
        r.send("{call:[10,'calculator'],echo:[{'a b':1,\"c\":2}]}\0").await;
        r.expect("{callback:[10],ok:[{'a b':1,c:2}]}").await;
        r.send("{call:[11,'calculator'],echo:[undefined]}\0").await;
        r.expect("{callback:[11],ok:[,]}").await;
        // NaN in: read (a superset of Node), but a NaN result cannot go out: 16.
        r.send("{call:[12,'calculator'],echo:[NaN]}\0").await;
        r.expect("{callback:[12],error:[16]}").await;

        f.server.close().await;
    }))
    .await;
}

#[tokio::test]
async fn tcp_probes_ids_order_and_server_calls() {
    within(
        60,
        Box::pin(async {
            let f = Fixture::start().await;
            let mut r = Raw::connect(&f).await;
            r.handshake().await;
            // pingPong, eventFromClient, inspect.
            r.send("{ping:[13]}\0").await;
            r.expect("{pong:[13]}").await;
            r.send("{event:[14,'calculator'],hello:['x']}\0").await;
            r.expect("{event:[-1,'calculator'],helloBack:['x']}").await;
            r.send("{inspect:[15,'nope']}\0").await;
            r.expect("{callback:[15],error:[12]}").await;

            // Server ids go strictly down, and events precede the reply of the call that emitted
            // them.
            r.send("{call:[16,'calculator'],ticker:[3]}\0").await;
            r.expect("{event:[-2,'calculator'],tick:[1,'1.0.0']}").await;
            r.expect("{event:[-3,'calculator'],tick:[2,'1.0.0']}").await;
            r.expect("{event:[-4,'calculator'],tick:[3,'1.0.0']}").await;
            r.expect("{callback:[16],ok:[3]}").await;
            // Server → client call from a method: the call takes the next id, the client answers.
            r.send("{call:[17,'calculator'],callClient:['srv']}\0")
                .await;
            r.expect("{call:[-5,'clientSide'],greet:['srv']}").await;
            r.send("{callback:[-5],ok:['hi from raw']}\0").await;
            r.expect("{callback:[17],ok:['hi from raw']}").await;

            // pipelinedBatch, and byteByByte with split UTF-8.
            r.send("{call:[18,'calculator'],add:[1,1]}\0{call:[19,'calculator'],add:[2,2]}\0")
                .await;
            r.expect("{callback:[18],ok:[2]}").await;
            r.expect("{callback:[19],ok:[4]}").await;
            for b in "{call:[20,'calculator'],echo:['ü€😀']}\0".as_bytes() {
                r.s.write_all(&[*b]).await.unwrap();
                r.s.flush().await.unwrap();
            }
            r.expect("{callback:[20],ok:['ü€😀']}").await;
            f.server.close().await;
        }),
    )
    .await;
}

#[tokio::test]
async fn bad_input_closes_only_that_connection() {
    within(
        60,
        Box::pin(async {
            let f = Fixture::start().await;
            let good = f
                .client_opts()
                .connect(&f.endpoint(Transport::Tcp), "testApp")
                .await
                .unwrap();
            for garbage in [
                "{call:[1,'calculator'],answer:[]\0",   // unterminated object
                "\0",                                   // empty frame
                "[1,2]\0",                              // not an object (TCP)
                "{call:[1,'calculator'],echo:[1+2]}\0", // garbage number
                "{handshake:[0,'testApp','1.0.0']}\0",  // second handshake
                "\u{1}\u{2}\u{3}\0",                    // binary junk
            ] {
                let mut r = Raw::connect(&f).await;
                r.handshake().await;
                r.send(garbage).await;
                r.expect_closed().await;
                // The other client is unaffected.
                assert_eq!(
                    good.call("calculator", "answer", []).await.unwrap(),
                    vec![connkit_jstp::Value::from(42)]
                );
            }
            // Invalid UTF-8 inside a string becomes U+FFFD; outside, it is a parse error.
            let mut r = Raw::connect(&f).await;
            r.handshake().await;
            r.s.write_all(b"{call:[1,'calculator'],echo:['a\xffb']}\0")
                .await
                .unwrap();
            r.expect("{callback:[1],ok:['a\u{fffd}b']}").await;
            r.s.write_all(b"{call:[2,'calculator'],\xff:[]}\0")
                .await
                .unwrap();
            r.expect_closed().await;
            // Oversize: more than 8 MiB without a NUL closes.
            let mut r = Raw::connect(&f).await;
            r.handshake().await;
            let chunk = vec![b'x'; 1 << 20];
            for _ in 0..9 {
                if r.s.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            r.expect_closed().await;
            assert_eq!(
                good.call("calculator", "add", [1.into(), 2.into()])
                    .await
                    .unwrap()[0],
                3.0
            );
            f.server.close().await;
        }),
    )
    .await;
}

#[tokio::test]
async fn handshake_timeout_closes_silent_connections() {
    within(
        30,
        Box::pin(async {
            let f = Fixture::start_with(|o| o.handshake_timeout(Duration::from_millis(200))).await;
            let mut events = f.server.events();
            let mut r = Raw::connect(&f).await;
            r.expect_closed().await;
            use futures_util::StreamExt;
            loop {
                if let Ok(connkit_jstp::ServerEvent::HandshakeFailed { error, .. }) =
                    events.next().await.unwrap()
                {
                    assert!(matches!(*error, Error::HandshakeTimeout(_)), "{error}");
                    break;
                }
            }
            f.server.close().await;
        }),
    )
    .await;
}

/// A minimal WebSocket client for frame-level probes.
struct RawWs {
    s: TcpStream,
    buf: Vec<u8>,
}

impl RawWs {
    async fn connect(f: &Fixture, protocol: Option<&str>) -> Result<RawWs, String> {
        let ep = f.endpoint(Transport::Ws);
        let mut s = TcpStream::connect(ep.authority().unwrap()).await.unwrap();
        let proto = protocol
            .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "GET /any/path HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{proto}\r\n",
            ep.authority().unwrap()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            if s.read(&mut b).await.unwrap() == 0 {
                break;
            }
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        if !head.starts_with("HTTP/1.1 101") {
            return Err(head);
        }
        assert!(head.contains("metarhia-jstp"), "{head}");
        Ok(RawWs { s, buf: Vec::new() })
    }

    async fn send_frame(&mut self, opcode: u8, payload: &[u8]) {
        let mut f = vec![0x80 | opcode];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&[0, 0, 0, 0]); // a zero mask key leaves the payload as is
        f.extend_from_slice(payload);
        self.s.write_all(&f).await.unwrap();
    }

    async fn fill(&mut self, n: usize) -> bool {
        while self.buf.len() < n {
            let mut chunk = [0u8; 65536];
            match self.s.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(k) => self.buf.extend_from_slice(&chunk[..k]),
            }
        }
        true
    }

    /// The next data frame (opcode, payload), or `None` after a close frame or EOF.
    async fn frame(&mut self) -> Option<(u8, bool, Vec<u8>)> {
        if !self.fill(2).await {
            return None;
        }
        let fin = self.buf[0] & 0x80 != 0;
        let op = self.buf[0] & 0x0f;
        let (len, hdr) = match self.buf[1] & 0x7f {
            126 => {
                self.fill(4).await;
                (
                    usize::from(u16::from_be_bytes([self.buf[2], self.buf[3]])),
                    4,
                )
            }
            127 => {
                self.fill(10).await;
                (
                    u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                    10,
                )
            }
            n => (usize::from(n), 2),
        };
        if !self.fill(hdr + len).await {
            return None;
        }
        let payload: Vec<u8> = self.buf.drain(..hdr + len).skip(hdr).collect();
        if op == 8 {
            return None;
        }
        Some((op, fin, payload))
    }

    async fn message(&mut self) -> Option<String> {
        let mut out = Vec::new();
        loop {
            let (_, fin, p) = self.frame().await?;
            out.extend_from_slice(&p);
            if fin {
                return Some(String::from_utf8(out).unwrap());
            }
        }
    }
}

#[tokio::test]
async fn websocket_probes_match_node_answers() {
    within(
        60,
        Box::pin(async {
            let f = Fixture::start().await;
            // noSubprotocol: 403.
            let e = RawWs::connect(&f, None).await.err().unwrap();
            assert!(e.starts_with("HTTP/1.1 403"), "{e}");
            let e = RawWs::connect(&f, Some("other")).await.err().unwrap();
            assert!(e.starts_with("HTTP/1.1 403"), "{e}");

            let mut w = RawWs::connect(&f, Some("metarhia-jstp")).await.unwrap();
            w.send_frame(1, b"{handshake:[0,'testApp','1.0.0']}").await;
            assert!(
                w.message()
                    .await
                    .unwrap()
                    .starts_with("{handshake:[0],ok:'")
            );
            // textFrames, binaryFrame, nonObjectFrame (ignored on WebSocket).
            w.send_frame(1, b"{call:[1,'calculator'],add:[1,2]}").await;
            assert_eq!(w.message().await.unwrap(), "{callback:[1],ok:[3]}");
            w.send_frame(2, b"{call:[2,'calculator'],add:[1,2]}").await;
            assert_eq!(w.message().await.unwrap(), "{callback:[2],ok:[3]}");
            w.send_frame(1, b"42").await;
            w.send_frame(1, b"{call:[3,'calculator'],add:[1,2]}").await;
            assert_eq!(w.message().await.unwrap(), "{callback:[3],ok:[3]}");
            // A 40 KB reply comes back in 16 KiB fragments (as Node's websocket library sends).
            let big = "x".repeat(40_000);
            w.send_frame(
                1,
                format!("{{call:[4,'calculator'],echo:['{big}']}}").as_bytes(),
            )
            .await;
            let mut sizes = Vec::new();
            let mut body = Vec::new();
            loop {
                let (op, fin, p) = w.frame().await.unwrap();
                sizes.push((op, fin, p.len()));
                body.extend_from_slice(&p);
                if fin {
                    break;
                }
            }
            assert_eq!(
                sizes,
                [
                    (1, false, 16384),
                    (0, false, 16384),
                    (0, true, 40_022 - 32768)
                ]
            );
            assert_eq!(body.len(), "{callback:[4],ok:['']}".len() + big.len());
            // nulTerminated and twoMessagesOneFrame: closed.
            w.send_frame(1, b"{call:[5,'calculator'],add:[1,2]}\0")
                .await;
            assert_eq!(w.message().await, None);
            let mut w = RawWs::connect(&f, Some("metarhia-jstp")).await.unwrap();
            w.send_frame(1, b"{handshake:[0,'testApp','1.0.0']}").await;
            w.message().await.unwrap();
            w.send_frame(1, b"{call:[1,'calculator'],add:[1,2]}\0{ping:[2]}")
                .await;
            assert_eq!(w.message().await, None);
            f.server.close().await;
        }),
    )
    .await;
}

#[tokio::test]
async fn client_side_rules_against_a_raw_server() {
    within(30, Box::pin(async {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ep: connkit_core::Endpoint = format!("tcp://{}", l.local_addr().unwrap()).parse().unwrap();
        let server = tokio::spawn(async move {
            let mut got = Vec::new();
            // 1: closes before replying → −2.
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            drop(s);
            // 2: sends a handshake request → the client answers 15 and gives up.
            let (mut s, _) = l.accept().await.unwrap();
            let n = s.read(&mut buf).await.unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            s.write_all(b"{handshake:[0,'x']}\0").await.unwrap();
            let mut rest = Vec::new();
            let _ = s.read_to_end(&mut rest).await;
            got.push(String::from_utf8_lossy(&rest).into_owned());
            // 3: a call before the handshake reply → the client closes.
            let (mut s, _) = l.accept().await.unwrap();
            let n = s.read(&mut buf).await.unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            s.write_all(b"{call:[-1,'x'],y:[]}\0").await.unwrap();
            // 4: a good reply, then ids as a Node server after a restore (positive, reused).
            let (mut s, _) = l.accept().await.unwrap();
            let n = s.read(&mut buf).await.unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            s.write_all(b"{handshake:[0],ok:'sess'}\0{event:[1,'calculator'],tick:[1]}\0{event:[1,'calculator'],tick:[2]}\0{call:[0,'clientSide'],greet:['odd ids']}\0{inspect:[7,'clientSide']}\0")
                .await
                .unwrap();
            let mut out = Vec::new();
            while out.iter().filter(|b| **b == 0).count() < 2 {
                let n = s.read(&mut buf).await.unwrap();
                out.extend_from_slice(&buf[..n]);
            }
            got.push(String::from_utf8_lossy(&out).into_owned());
            got
        });
        let e = ClientOptions::new()
            .login("u", "p")
            .connect(&ep, "calc@~1.2")
            .await
            .unwrap_err();
        assert_eq!(e.remote().map(|r| r.code()), Some(-2), "{e}");
        let e = Client::connect(&ep, "calc").await.unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "{e}");
        let e = Client::connect(&ep, ("calc", semver::Version::new(1, 0, 0)))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Protocol(_)), "{e}");
        let c = ClientOptions::new()
            .application(support::client_app())
            .strategy("token", connkit_jstp::Value::from(vec!["abc"]))
            .connect(&ep, "calc@1")
            .await
            .unwrap();
        assert_eq!(c.session_id(), "sess");
        let got = server.await.unwrap();
        assert_eq!(got[0], "{handshake:[0,'calc','~1.2'],login:['u','p']}\0");
        assert_eq!(got[1], "{handshake:[0,'calc']}\0");
        assert_eq!(got[2], "{handshake:[0],error:[15]}\0");
        assert_eq!(got[3], "{handshake:[0,'calc','1.0.0']}\0");
        assert_eq!(got[4], "{handshake:[0,'calc','1'],token:['abc']}\0");
        // Both answered, whatever the order (the inspect is answered at once, the call by a
        // method future).
        assert_eq!(got[5].len(), "{callback:[0],ok:['hello odd ids from client']}\0{callback:[7],ok:['greet']}\0".len());
        assert!(got[5].contains("{callback:[0],ok:['hello odd ids from client']}\0"), "{}", got[5]);
        assert!(got[5].contains("{callback:[7],ok:['greet']}\0"), "{}", got[5]);
        c.close().await;
    }))
    .await;
}
