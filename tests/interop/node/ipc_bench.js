'use strict';

// socket-ipc load generator and quiet echo server, for `just compare`.
//
//   node ipc_bench.js server <socket>
//       a @crussell52/socket-ipc Server that echoes every message to its sender; prints READY.
//   node ipc_bench.js client <socket> [--connections C] [--pipeline P] [--duration S]
//                                     [--payload BYTES] [--warmup S]
//       C clients, each keeping P messages {seq, pad} in flight on topic `echo`, for S seconds;
//       prints one JSON line: {"messages":…,"seconds":…,"msgs_per_sec":…,"p50_us":…,"p99_us":…,"p999_us":…}
//       (latencies are per round trip, measured from send to echo).
//
// The server exits when stdin ends.

const ipc = require('@crussell52/socket-ipc');

const [mode, socketFile, ...rest] = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? Number(rest[i + 1]) : dflt;
};

if (mode === 'server') {
  const server = new ipc.Server({ socketFile });
  server.on('connection', (id, socket) => socket.on('error', () => {}));
  server.on('message', (message, topic, clientId) => server.send(topic, message, clientId));
  server.on('error', () => {});
  server.on('listening', () => console.log('READY'));
  server.listen();
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
} else if (mode === 'client') {
  const connections = opt('connections', 1);
  const pipeline = opt('pipeline', 1);
  const duration = opt('duration', 5);
  const warmup = opt('warmup', 1);
  const pad = 'x'.repeat(opt('payload', 16));
  const latencies = [];
  let measuring = false;
  let done = false;
  let count = 0;
  let seq = 0;
  const clients = [];
  const start = (client) => {
    const inflight = new Map();
    const sendOne = () => {
      const s = seq++;
      inflight.set(s, process.hrtime.bigint());
      client.send('echo', { seq: s, pad });
    };
    client.on('message', (message) => {
      const t0 = inflight.get(message.seq);
      inflight.delete(message.seq);
      if (measuring && t0 !== undefined) {
        count++;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      if (!done) sendOne();
    });
    for (let i = 0; i < pipeline; i++) sendOne();
  };
  let connected = 0;
  for (let i = 0; i < connections; i++) {
    const client = new ipc.Client({ socketFile, retryDelay: 50 });
    client.on('error', () => {});
    client.once('connect', () => {
      connected++;
      if (connected === connections) clients.forEach(start);
    });
    clients.push(client);
    client.connect();
  }
  let t0;
  setTimeout(() => {
    measuring = true;
    t0 = process.hrtime.bigint();
    setTimeout(() => {
      measuring = false;
      done = true;
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      latencies.sort((a, b) => a - b);
      const q = (p) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] : null);
      console.log(JSON.stringify({
        messages: count,
        seconds,
        msgs_per_sec: count / seconds,
        p50_us: q(0.5),
        p99_us: q(0.99),
        p999_us: q(0.999),
      }));
      process.exit(0);
    }, duration * 1000);
  }, warmup * 1000);
} else {
  console.error('usage: ipc_bench.js server|client <socket> …');
  process.exit(2);
}
