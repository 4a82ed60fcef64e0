'use strict';

// A @metarhia/jstp 2.3.0 server for connkit's interop tests.
//
//   node jstp_server.js [--unix <path>] [--tls <cert.pem> <key.pem>] [--heartbeat <ms>]
//
// Serves the application `calc` in versions 1.0.0 and 2.0.0 on TCP and WebSocket (port 0),
// plus a Unix socket and TLS / secure WebSocket when asked. Interface `calculator`:
//   answer() → 42                 add(a, b) → a + b           echo(x) → x
//   divide(a, b) → a / b, or RemoteError(100, 'Division by zero', ['a', 1]) when b is 0
//   ticks(n) → emits `tick` i (i = 1..n) to the caller, then n
//   pair(a, b) → callback(null, a, b)      fail(code) → callback(code)
//   failText(s) → callback(s)              throws() → a synchronous throw (answered 16)
//   asyncAdd(a, b) → async                 asyncFail() → rejects with an Error (answered 16)
//   version() → the app version            callClient(who) → calls clientSide.greet(who)
//   whoami() → the user name
// Interface `slow`: sleep(ms) → ms, after ms milliseconds (a reply lost in a cut).
// Event handler: calculator.hello(...args) → emits calculator.helloBack(...args).
// Auth: login user/secret; strategy `token` with ['abc'] → user 'token-user'.
//
// Prints `READY {"tcp":port,"ws":port,"unix":path,"tls":port,"wss":port}` once listening,
// then one JSON line per server event: {"event":"connect"|"disconnect",...}.
// Commands on stdin, one JSON object per line (values are mdsf text):
//   {"cmd":"broadcast","interface":"i","event":"e","args":"[1,'x']"}
//   {"cmd":"callAll","interface":"i","method":"m","args":"[...]"}   → {"reply":"callAll",
//        "results":[{"ok":"<mdsf list>"}|{"error":{code,message}}]}
//   {"cmd":"clients"}  → {"reply":"clients","count":n}
//   {"cmd":"heartbeats"}  → {"reply":"heartbeats","pings":n,"pongs":m}: the pings and pongs
//        received from clients so far (`--heartbeat <ms>` makes the server ping every ms)
// Exits when stdin ends.

const fs = require('fs');
const readline = require('readline');
const jstp = require('@metarhia/jstp');
const mdsf = require('mdsf');

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

// Quirk 12: a sync throw or a rejection would end the process without these.
process.on('uncaughtException', (e) => process.stderr.write(`uncaught: ${e}\n`));
process.on('unhandledRejection', (e) => process.stderr.write(`unhandled: ${e}\n`));

const args = process.argv.slice(2);
const flag = (name, count = 1) => {
  const i = args.indexOf(name);
  return i < 0 ? null : args.slice(i + 1, i + 1 + count);
};

const makeApi = (version) => ({
  calculator: {
    answer(connection, cb) {
      cb(null, 42);
    },
    add(connection, a, b, cb) {
      cb(null, a + b);
    },
    echo(connection, x, cb) {
      cb(null, x);
    },
    divide(connection, a, b, cb) {
      if (b === 0) {
        cb(new jstp.RemoteError(100, 'Division by zero', ['a', 1]));
        return;
      }
      cb(null, a / b);
    },
    ticks(connection, n, cb) {
      for (let i = 1; i <= n; i++) {
        connection.emitRemoteEvent('calculator', 'tick', [i]);
      }
      cb(null, n);
    },
    pair(connection, a, b, cb) {
      cb(null, a, b);
    },
    fail(connection, code, cb) {
      cb(code);
    },
    failText(connection, text, cb) {
      cb(text);
    },
    throws(connection, cb) {
      throw new Error('thrown on purpose');
    },
    async asyncAdd(connection, a, b) {
      return a + b;
    },
    async asyncFail(connection) {
      throw new Error('rejected on purpose');
    },
    version(connection, cb) {
      cb(null, version);
    },
    callClient(connection, who, cb) {
      connection.callMethod('clientSide', 'greet', [who], (err, ...res) => {
        if (err) cb(err);
        else cb(null, ...res);
      });
    },
    whoami(connection, cb) {
      cb(null, connection.username);
    },
  },
  slow: {
    sleep(connection, ms, cb) {
      setTimeout(() => cb(null, ms), ms);
    },
  },
});

const eventHandlers = {
  calculator: {
    hello(connection, ...rest) {
      connection.emitRemoteEvent('calculator', 'helloBack', rest);
    },
  },
};

const apps = [
  new jstp.Application('calc@1.0.0', makeApi('1.0.0'), eventHandlers),
  new jstp.Application('calc@2.0.0', makeApi('2.0.0'), eventHandlers),
];

const authPolicy = (connection, application, strategy, credentials, cb) => {
  if (strategy === 'login' && credentials[0] === 'user' && credentials[1] === 'secret') {
    cb(null, 'user');
  } else if (strategy === 'token' && credentials[0] === 'abc') {
    cb(null, 'token-user');
  } else {
    cb(new Error('refused'));
  }
};

const heartbeat = flag('--heartbeat');
const options = {
  applications: apps,
  authPolicy,
  heartbeatInterval: heartbeat ? Number(heartbeat[0]) : undefined,
};
const servers = [];
const heartbeats = { pings: 0, pongs: 0 };
const onEvents = (server) => {
  server.on('log', (connection, event, message) => {
    if (event !== 'incomingMessage' || !message) return;
    if (message.ping) heartbeats.pings++;
    if (message.pong) heartbeats.pongs++;
  });
  server.on('connect', (c) => out({ event: 'connect', id: c.id, username: c.username }));
  server.on('disconnect', (c) => out({ event: 'disconnect', id: c.id }));
  server.on('connectionError', (e) => process.stderr.write(`connectionError: ${e}\n`));
  servers.push(server);
  return server;
};

const listen = (server, target) =>
  new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(target, () => resolve(server.address()));
  });

const main = async () => {
  const ready = {};
  const tcp = onEvents(jstp.net.createServer(options));
  ready.tcp = (await listen(tcp, { port: 0, host: '127.0.0.1' })).port;
  const ws = onEvents(jstp.ws.createServer(options, {}));
  ready.ws = (await listen(ws, { port: 0, host: '127.0.0.1' })).port;
  const unix = flag('--unix');
  if (unix) {
    const u = onEvents(jstp.net.createServer(options));
    await listen(u, unix[0]);
    ready.unix = unix[0];
  }
  const tlsFiles = flag('--tls', 2);
  if (tlsFiles) {
    const tlsOptions = Object.assign({}, options, {
      cert: fs.readFileSync(tlsFiles[0]),
      key: fs.readFileSync(tlsFiles[1]),
    });
    const t = onEvents(jstp.tls.createServer(tlsOptions));
    ready.tls = (await listen(t, { port: 0, host: '127.0.0.1' })).port;
    const w = onEvents(jstp.wss.createServer(tlsOptions, {}));
    ready.wss = (await listen(w, { port: 0, host: '127.0.0.1' })).port;
  }
  process.stdout.write(`READY ${JSON.stringify(ready)}\n`);
};

const allClients = () => {
  const list = [];
  for (const s of servers) list.push(...s.getClientsArray());
  return list;
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.cmd === 'broadcast') {
    const a = mdsf.parse(cmd.args);
    for (const s of servers) s.broadcast(cmd.interface, cmd.event, ...a);
    out({ reply: 'broadcast' });
  } else if (cmd.cmd === 'heartbeats') {
    out(Object.assign({ reply: 'heartbeats' }, heartbeats));
  } else if (cmd.cmd === 'clients') {
    out({ reply: 'clients', count: allClients().length });
  } else if (cmd.cmd === 'callAll') {
    const clients = allClients();
    const results = [];
    if (clients.length === 0) out({ reply: 'callAll', results });
    clients.forEach((c) => {
      c.callMethod(cmd.interface, cmd.method, mdsf.parse(cmd.args), (err, ...res) => {
        results.push(
          err ? { error: { code: err.code, message: err.message } } : { ok: mdsf.stringify(res) }
        );
        if (results.length === clients.length) out({ reply: 'callAll', results });
      });
    });
  }
});
rl.on('close', () => process.exit(0));

main().catch((e) => {
  process.stderr.write(`failed: ${e && e.stack}\n`);
  process.exit(1);
});
