//! `connkit jstp …`: the command-line contract, against `connkit jstp serve --demo` and against
//! real `@metarhia/jstp` 2.3.0 peers (a Node server for the client commands, a Node client
//! for `serve`).

use connkit_testkit::net::unique_socket_path;
use connkit_testkit::within;
use serde_json::{Value, json};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, Command};

const BIN: &str = env!("CARGO_BIN_EXE_connkit");
const T: Duration = Duration::from_secs(20);

async fn run(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .output()
        .await
        .expect("run connkit")
}

fn stdout_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {:?}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr_json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stderr)
        .unwrap_or_else(|e| panic!("{e}: stderr {:?}", String::from_utf8_lossy(&out.stderr)))
}

/// `connkit jstp serve`, with the endpoints it printed.
struct Serve {
    child: Child,
    endpoints: Vec<String>,
    _stderr: Lines<BufReader<ChildStderr>>,
}

impl Serve {
    async fn start(args: &[&str]) -> Serve {
        let mut child = Command::new(BIN)
            .args(["jstp", "serve"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn connkit");
        let count = args.iter().filter(|a| a.contains("://")).count();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut endpoints = Vec::new();
        while endpoints.len() < count {
            let l = tokio::time::timeout(T, lines.next_line())
                .await
                .expect("serve printed its endpoints")
                .unwrap()
                .expect("serve exited early");
            let ep = l
                .strip_prefix("connkit: listening on ")
                .unwrap_or_else(|| panic!("unexpected line {l:?}"));
            endpoints.push(ep.to_owned());
        }
        Serve {
            child,
            endpoints,
            _stderr: lines,
        }
    }

    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(self.child.wait().await.unwrap().success());
    }
}

#[tokio::test]
async fn serve_demo_and_client_commands() {
    within(60, async {
        let (_dir, sock) = unique_socket_path("cli-jstp");
        let unix = format!("unix://{}", sock.display());
        let serve = Serve::start(&[
            "--demo",
            "--listen",
            "tcp://127.0.0.1:0",
            "ws://127.0.0.1:0",
            "--listen",
            &unix,
        ])
        .await;
        assert!(serve.endpoints[0].starts_with("tcp://127.0.0.1:"));
        assert!(!serve.endpoints[0].ends_with(":0"));
        assert_eq!(serve.endpoints[2], unix);
        for ep in &serve.endpoints {
            let ep = ep.as_str();
            let out = run(&["jstp", "call", ep, "calc", "calculator.add", "2", "3"]).await;
            assert!(out.status.success(), "{out:?}");
            assert_eq!(stdout_json(&out), json!([5]));
            let out = run(&["jstp", "call", ep, "calc@^1.0.0", "calculator.answer"]).await;
            assert_eq!(stdout_json(&out), json!([42]));
            // JSON and JSTP literals; undefined becomes null.
            let out = run(&[
                "jstp",
                "call",
                ep,
                "calc@1",
                "calculator.echo",
                "{a:[1,,'x'],b:undefined,\"c\":{\"d\":2.5}}",
            ])
            .await;
            assert_eq!(
                stdout_json(&out),
                json!([{"a": [1, null, "x"], "c": {"d": 2.5}}])
            );
            let out = run(&["jstp", "call", ep, "calc", "calculator.echo", "undefined"]).await;
            assert_eq!(stdout_json(&out), json!([null]));
            let out = run(&["jstp", "call", ep, "calc", "calculator.echo", "-1.5"]).await;
            assert_eq!(stdout_json(&out), json!([-1.5]));
            let out = run(&["jstp", "call", ep, "calc", "calculator.divide", "7", "2"]).await;
            assert_eq!(stdout_json(&out), json!([3.5]));
            let out = run(&["jstp", "call", ep, "calc", "calculator.ticks", "3"]).await;
            assert_eq!(stdout_json(&out), json!([3]));
            // Remote errors: exit 2, {"code","message"} on stderr.
            let out = run(&["jstp", "call", ep, "calc", "calculator.divide", "1", "0"]).await;
            assert_eq!(out.status.code(), Some(2));
            assert!(out.stdout.is_empty());
            assert_eq!(
                stderr_json(&out),
                json!({"code": 100, "message": "Division by zero"})
            );
            let out = run(&["jstp", "call", ep, "calc", "calculator.add", "1"]).await;
            assert_eq!(
                stderr_json(&out),
                json!({"code": 17, "message": "Invalid signature"})
            );
            let out = run(&["jstp", "call", ep, "calc", "calculator.nope"]).await;
            assert_eq!(
                stderr_json(&out),
                json!({"code": 14, "message": "Method not found"})
            );
            let out = run(&["jstp", "call", ep, "calc", "nope.x"]).await;
            assert_eq!(
                stderr_json(&out),
                json!({"code": 12, "message": "Interface not found"})
            );
            let out = run(&["jstp", "call", ep, "calc@^2.0.0", "calculator.answer"]).await;
            assert_eq!(out.status.code(), Some(2));
            assert_eq!(
                stderr_json(&out),
                json!({"code": 10, "message": "Application not found"})
            );
            // Inspect.
            let out = run(&["jstp", "inspect", ep, "calc", "calculator"]).await;
            assert_eq!(
                stdout_json(&out),
                json!(["answer", "add", "echo", "divide", "ticks"])
            );
            let out = run(&["jstp", "inspect", ep, "calc", "nope"]).await;
            assert_eq!(out.status.code(), Some(2));
            assert_eq!(stderr_json(&out)["code"], 12);
        }
        let tcp = serve.endpoints[0].clone();
        // Non-remote failures: exit 1, {"error","kind"} on stderr.
        for (args, kind) in [
            (vec!["calc@1.2.3.4", "calculator.add", "1", "2"], "usage"),
            (vec!["calc", "calculator.echo", "hello"], "usage"),
            (vec!["calc", "noDot", "1"], "usage"),
        ] {
            let mut all = vec!["jstp", "call", tcp.as_str()];
            all.extend(args);
            let out = run(&all).await;
            assert_eq!(out.status.code(), Some(1), "{out:?}");
            assert_eq!(stderr_json(&out)["kind"], kind, "{out:?}");
        }
        let out = run(&[
            "jstp",
            "call",
            "tcp://127.0.0.1:1",
            "calc",
            "calculator.add",
            "1",
            "2",
        ])
        .await;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr_json(&out)["kind"], "connect");
        let out = run(&["jstp", "inspect", "nonsense", "calc", "calculator"]).await;
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(stderr_json(&out)["kind"], "usage");

        // listen: ticks from another client show up as JSON lines; an event filter applies.
        let ws = serve.endpoints[1].clone();
        let mut listen = Command::new(BIN)
            .args(["jstp", "listen", &ws, "calc", "calculator", "tick"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut err = BufReader::new(listen.stderr.take().unwrap()).lines();
        let l = tokio::time::timeout(T, err.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(l, format!("connkit: connected to {ws}"));
        let out = run(&["jstp", "call", &tcp, "calc", "calculator.ticks", "2"]).await;
        assert_eq!(stdout_json(&out), json!([2]));
        let mut lines = BufReader::new(listen.stdout.take().unwrap()).lines();
        for i in 1..=2 {
            let l = lines.next_line().await.unwrap().unwrap();
            assert_eq!(
                serde_json::from_str::<Value>(&l).unwrap(),
                json!({"interface": "calculator", "event": "tick", "args": [i]})
            );
        }
        // The server going away ends listen with exit 1.
        serve.stop().await;
        let status = listen.wait().await.unwrap();
        assert_eq!(status.code(), Some(1));
        let l = err.next_line().await.unwrap().unwrap();
        assert_eq!(serde_json::from_str::<Value>(&l).unwrap()["kind"], "closed");
    })
    .await;
}

#[tokio::test]
async fn serve_with_login_and_tls() {
    within(60, async {
        let dir = tempfile::tempdir().unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        let serve = Serve::start(&[
            "--demo",
            "--login",
            "user:secret",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--listen",
            "tls://127.0.0.1:0",
            "wss://127.0.0.1:0",
        ])
        .await;
        let ca = cert.to_str().unwrap();
        for ep in &serve.endpoints {
            let tls = ["--ca", ca, "--server-name", "localhost"];
            let mut args = vec!["jstp", "call", ep, "calc", "calculator.add", "1", "2"];
            args.extend(tls);
            let out = run(&args).await;
            assert_eq!(stdout_json(&out), json!([3]), "{out:?}");
            args.extend(["--login", "user:secret"]);
            let out = run(&args).await;
            assert_eq!(stdout_json(&out), json!([3]), "{out:?}");
            let mut bad = vec![
                "jstp",
                "inspect",
                ep,
                "calc",
                "calculator",
                "--login",
                "user:x",
            ];
            bad.extend(tls);
            let out = run(&bad).await;
            assert_eq!(out.status.code(), Some(2));
            assert_eq!(
                stderr_json(&out),
                json!({"code": 11, "message": "Authentication failed"})
            );
            // Without a CA: a usage error.
            let out = run(&["jstp", "call", ep, "calc", "calculator.answer"]).await;
            assert_eq!(out.status.code(), Some(1));
            assert_eq!(stderr_json(&out)["kind"], "usage");
        }
        serve.stop().await;
    })
    .await;
}

#[tokio::test]
async fn client_commands_against_a_node_server() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, sock) = unique_socket_path("cli-jstp-node");
        let mut server = node
            .spawn("jstp_server.js", ["--unix", sock.to_str().unwrap()])
            .unwrap();
        let ready: Value = serde_json::from_str(&server.wait_ready(T).await.unwrap()).unwrap();
        let eps = [
            format!("tcp://127.0.0.1:{}", ready["tcp"]),
            format!("ws://127.0.0.1:{}/", ready["ws"]),
            format!("unix://{}", ready["unix"].as_str().unwrap()),
        ];
        for ep in &eps {
            let ep = ep.as_str();
            let out = run(&["jstp", "call", ep, "calc", "calculator.add", "2", "3"]).await;
            assert_eq!(stdout_json(&out), json!([5]), "{out:?}");
            let out = run(&["jstp", "call", ep, "calc@^1.0.0", "calculator.version"]).await;
            assert_eq!(stdout_json(&out), json!(["1.0.0"]));
            let out = run(&["jstp", "call", ep, "calc", "calculator.version"]).await;
            assert_eq!(stdout_json(&out), json!(["2.0.0"]));
            let out = run(&["jstp", "call", ep, "calc", "calculator.pair", "1", "'two'"]).await;
            assert_eq!(stdout_json(&out), json!([1, "two"]));
            let out = run(&["jstp", "call", ep, "calc", "calculator.echo", "[1,,3]"]).await;
            assert_eq!(stdout_json(&out), json!([[1, null, 3]]));
            let out = run(&["jstp", "call", ep, "calc", "calculator.divide", "1", "0"]).await;
            assert_eq!(out.status.code(), Some(2));
            assert_eq!(
                stderr_json(&out),
                json!({"code": 100, "message": "Division by zero"})
            );
            let out = run(&["jstp", "call", ep, "calc", "calculator.throws"]).await;
            assert_eq!(stderr_json(&out), json!({"code": 16, "message": "Internal API error"}));
            let out = run(&["jstp", "call", ep, "calc@^3", "calculator.answer"]).await;
            assert_eq!(stderr_json(&out)["code"], 10);
            let out = run(&[
                "jstp", "call", ep, "calc", "calculator.whoami", "--login", "user:secret",
            ])
            .await;
            assert_eq!(stdout_json(&out), json!(["user"]));
            let out = run(&["jstp", "call", ep, "calc", "calculator.whoami", "--login", "user:no"])
                .await;
            assert_eq!(stderr_json(&out), json!({"code": 11, "message": "Authentication failed"}));
            let out = run(&["jstp", "inspect", ep, "calc", "calculator"]).await;
            let names = stdout_json(&out);
            assert_eq!(names[0], "answer");
            assert_eq!(names.as_array().unwrap().len(), 14);
        }
        // listen ← a Node broadcast.
        let mut listen = Command::new(BIN)
            .args(["jstp", "listen", &eps[0], "calc", "news"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut err = BufReader::new(listen.stderr.take().unwrap()).lines();
        tokio::time::timeout(T, err.next_line()).await.unwrap().unwrap().unwrap();
        server
            .write_line(r#"{"cmd":"broadcast","interface":"news","event":"flash","args":"['hi',{n:1},undefined]"}"#)
            .await
            .unwrap();
        let mut lines = BufReader::new(listen.stdout.take().unwrap()).lines();
        let l = lines.next_line().await.unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&l).unwrap(),
            json!({"interface": "news", "event": "flash", "args": ["hi", {"n": 1}]})
        );
        let _ = listen.kill().await;
    })
    .await;
}

#[tokio::test]
async fn node_client_against_serve_demo() {
    let node = connkit_testkit::require_node!();
    within(60, async {
        let (_dir, sock) = unique_socket_path("cli-jstp-serve");
        let unix = format!("unix://{}", sock.display());
        let serve = Serve::start(&[
            "--demo",
            "--listen",
            "tcp://127.0.0.1:0",
            "ws://127.0.0.1:0",
            &unix,
        ])
        .await;
        let port = |ep: &str| ep.rsplit(':').next().unwrap().trim_end_matches('/').parse::<u16>().unwrap();
        let connects = [
            json!({"cmd":"connect","transport":"net","port":port(&serve.endpoints[0]),"app":"calc@^1.0.0"}),
            json!({"cmd":"connect","transport":"ws","port":port(&serve.endpoints[1]),"app":"calc"}),
            json!({"cmd":"connect","transport":"net","path":sock.to_str().unwrap(),"app":"calc@1"}),
        ];
        for connect in connects {
            let mut c = node.spawn("jstp_client.js", Vec::<String>::new()).unwrap();
            c.wait_ready(T).await.unwrap();
            let mut id = 0;
            let mut cmd = async |c: &mut connkit_testkit::NodeProcess, mut v: Value| {
                id += 1;
                v["id"] = json!(id);
                c.write_line(&v.to_string()).await.unwrap();
                let mut events = Vec::new();
                loop {
                    let l = c.next_line(T).await.unwrap().unwrap();
                    let v: Value = serde_json::from_str(&l).unwrap();
                    if v["id"] == json!(id) {
                        return (v, events);
                    }
                    events.push(v);
                }
            };
            let (r, _) = cmd(&mut c, connect.clone()).await;
            assert!(r["ok"].is_string(), "{r}");
            let call = |m: &str, a: &str| json!({"cmd":"call","interface":"calculator","method":m,"args":a});
            let (r, _) = cmd(&mut c, call("add", "[2,3]")).await;
            assert_eq!(r["ok"], "[5]");
            let (r, _) = cmd(&mut c, call("answer", "[]")).await;
            assert_eq!(r["ok"], "[42]");
            let (r, _) = cmd(&mut c, call("echo", "[{a:[1,,'x']}]")).await;
            assert_eq!(r["ok"], "[{a:[1,,'x']}]");
            let (r, _) = cmd(&mut c, call("divide", "[1,0]")).await;
            assert_eq!(r["error"]["code"], 100);
            assert_eq!(r["error"]["message"], "Division by zero");
            let (r, events) = cmd(&mut c, call("ticks", "[3]")).await;
            assert_eq!(r["ok"], "[3]");
            // Node printed each tick before the callback.
            let ticks: Vec<_> = events.iter().map(|e| e["event"]["args"].clone()).collect();
            assert_eq!(ticks, [json!("[1]"), json!("[2]"), json!("[3]")], "{connect}");
            let (r, _) = cmd(&mut c, json!({"cmd":"inspect","interface":"calculator"})).await;
            assert_eq!(r["ok"], json!(["answer", "add", "echo", "divide", "ticks"]));
            let (r, _) = cmd(&mut c, json!({"cmd":"ping"})).await;
            assert_eq!(r["ok"], true);
        }
        serve.stop().await;
    })
    .await;
}
