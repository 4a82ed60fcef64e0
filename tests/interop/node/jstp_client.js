'use strict';

// A @metarhia/jstp 2.3.0 client for connkit's interop tests, driven by JSON commands on stdin.
//
//   node jstp_client.js
//
// Prints `READY` at once. Each command is one JSON object per line with an `id`; each answer
// is one line {"id":…,"ok":…} or {"id":…,"error":{"code":…,"message":…,"info":"<mdsf>"}}.
// Values travel as mdsf text, so `undefined` and holes survive.
//   {"id":1,"cmd":"connect","transport":"net|tls|ws|wss","port":p,"path":"/unix/socket",
//    "app":"calc@^1.0.0","login":["user","secret"],"ca":"<pem>"}      → ok: the session id
//   {"id":2,"cmd":"call","interface":"calculator","method":"add","args":"[1,2]"}
//                                                               → ok: "<mdsf of the ok list>"
//   {"id":3,"cmd":"inspect","interface":"calculator"}           → ok: ["answer",…]
//   {"id":4,"cmd":"emit","interface":"i","event":"e","args":"[…]"}  → ok: true
//   {"id":5,"cmd":"ping"}                                        → ok: true
//   {"id":6,"cmd":"bench","mode":"sequential|pipelined","n":5000,"rounds":5}
//                                                               → ok: {"median":calls/s,…}
//   {"id":7,"cmd":"close"}                                       → ok: true
//   {"id":8,"cmd":"heartbeats"}           → ok: {"pings":n,"pongs":m} received so far
// `connect` also takes "heartbeat": ms (client.heartbeatInterval) and "reconnect": true.
// Every event the server sends is printed as {"event":{"interface":…,"name":…,"args":"<mdsf>"}};
// a closed connection as {"closed":true}.
// The client application has `clientSide.greet(who)` → 'hello <who> from node'.
// Reconnection is off unless `reconnect` is true. Exits when stdin ends.

const readline = require('readline');
const jstp = require('@metarhia/jstp');
const mdsf = require('mdsf');

const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const errorOf = (e) => ({
  code: e && e.code !== undefined ? e.code : null,
  message: e && e.message !== undefined ? String(e.message) : String(e),
  info: e && e.info ? mdsf.stringify(e.info) : null,
});

process.on('uncaughtException', (e) => process.stderr.write(`uncaught: ${e && e.stack}\n`));
process.on('unhandledRejection', (e) => process.stderr.write(`unhandled: ${e}\n`));

// Every remote event, whatever its interface and name, reaches this handler.
const eventHandlers = new Proxy(
  {},
  {
    get: (_, iface) =>
      new Proxy(
        {},
        {
          get: (__, name) => (connection, ...args) =>
            out({ event: { interface: String(iface), name: String(name), args: mdsf.stringify(args) } }),
        }
      ),
  }
);

const application = new jstp.Application(
  'nodeClient@1.0.0',
  {
    clientSide: {
      greet(connection, who, cb) {
        cb(null, `hello ${who} from node`);
      },
    },
  },
  eventHandlers
);

let connection = null;
const heartbeats = { pings: 0, pongs: 0 };

const connect = (cmd, cb) => {
  // `reconnect: true` keeps Node's default reconnector (resume with the session strategy).
  const client = cmd.reconnect ? { application } : { application, reconnector: () => {} };
  if (cmd.heartbeat) client.heartbeatInterval = cmd.heartbeat;
  if (cmd.login) client.connectPolicy = new jstp.SimpleConnectPolicy(cmd.login[0], cmd.login[1]);
  const done = (err, conn) => {
    if (err) return cb(err);
    connection = conn;
    conn.on('incomingMessage', (message) => {
      if (message.ping) heartbeats.pings++;
      if (message.pong) heartbeats.pongs++;
    });
    conn.on('close', () => out({ closed: true }));
    conn.on('error', (e) => process.stderr.write(`connection error: ${e}\n`));
    cb(null, conn.session ? conn.session.id : null);
  };
  switch (cmd.transport) {
    case 'net':
      if (cmd.path) jstp.net.connect(cmd.app, client, cmd.path, done);
      else jstp.net.connect(cmd.app, client, cmd.port, '127.0.0.1', done);
      break;
    case 'tls':
      jstp.tls.connect(
        cmd.app,
        client,
        { host: '127.0.0.1', port: cmd.port, ca: cmd.ca, servername: 'localhost' },
        done
      );
      break;
    case 'ws':
      jstp.ws.connect(cmd.app, client, {}, `ws://127.0.0.1:${cmd.port}/`, done);
      break;
    case 'wss':
      jstp.wss.connect(
        cmd.app,
        client,
        { tlsOptions: { ca: cmd.ca, servername: 'localhost' } },
        `wss://localhost:${cmd.port}/`,
        done
      );
      break;
    default:
      cb(new Error(`unknown transport ${cmd.transport}`));
  }
};

const bench = (cmd, cb) => {
  const n = cmd.n || 5000;
  const rounds = cmd.rounds || 5;
  const call = (i, k) => connection.callMethod('calculator', 'add', [i, 1], k);
  const sequential = (count, k) => {
    let i = 0;
    const next = () => {
      if (i === count) return k();
      call(i++, (err) => (err ? cb(err) : next()));
    };
    next();
  };
  const pipelined = (count, k) => {
    let left = count;
    for (let i = 0; i < count; i++) {
      call(i, (err) => {
        if (err) return cb(err);
        if (--left === 0) k();
      });
    }
  };
  const run = cmd.mode === 'pipelined' ? pipelined : sequential;
  const results = [];
  const round = () => {
    if (results.length === rounds) {
      const sorted = results.slice().sort((a, b) => a - b);
      return cb(null, { median: sorted[Math.floor(rounds / 2)], rounds: results });
    }
    const start = process.hrtime.bigint();
    run(n, () => {
      const secs = Number(process.hrtime.bigint() - start) / 1e9;
      results.push(Math.round(n / secs));
      setImmediate(round);
    });
  };
  run(1000, round); // warm-up
};

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  const reply = (err, ok) =>
    out(err ? { id: cmd.id, error: errorOf(err) } : { id: cmd.id, ok: ok === undefined ? null : ok });
  try {
    switch (cmd.cmd) {
      case 'connect':
        connect(cmd, reply);
        break;
      case 'call':
        connection.callMethod(cmd.interface, cmd.method, mdsf.parse(cmd.args), (err, ...res) =>
          err ? reply(err) : reply(null, mdsf.stringify(res))
        );
        break;
      case 'inspect':
        connection.inspectInterface(cmd.interface, (err, proxy) =>
          err ? reply(err) : reply(null, Object.keys(proxy).filter((k) => typeof proxy[k] === 'function'))
        );
        break;
      case 'emit':
        connection.emitRemoteEvent(cmd.interface, cmd.event, mdsf.parse(cmd.args));
        reply(null, true);
        break;
      case 'ping':
        connection.ping(() => reply(null, true));
        break;
      case 'bench':
        bench(cmd, reply);
        break;
      case 'heartbeats':
        reply(null, heartbeats);
        break;
      case 'close':
        connection.close();
        reply(null, true);
        break;
      default:
        reply(new Error(`unknown command ${cmd.cmd}`));
    }
  } catch (e) {
    reply(e);
  }
});
rl.on('close', () => process.exit(0));

process.stdout.write('READY\n');
