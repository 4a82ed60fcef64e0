'use strict';

// @metarhia/jstp load generator for `just compare`, with the semantics of `connkit bench jstp`:
//
//   node jstp_bench.js <tcp://host:port | unix:///path | ws://host:port/> [--app calc]
//        [--connections C] [--pipeline P] [--duration S] [--warmup S]
//
// C connections, each keeping P calls `calculator.add(i, 1)` in flight, for S seconds after a
// warm-up; prints one JSON line:
//   {"requests":…,"seconds":…,"per_sec":…,"p50_us":…,"p99_us":…,"p999_us":…}

const jstp = require('@metarhia/jstp');

const [target, ...rest] = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : dflt;
};
const app = opt('app', 'calc');
const connections = Number(opt('connections', 1));
const pipeline = Number(opt('pipeline', 1));
const duration = Number(opt('duration', 5));
const warmup = Number(opt('warmup', 1));

const connect = (cb) => {
  const client = { reconnector: () => {} };
  const url = new URL(target);
  if (url.protocol === 'tcp:') jstp.net.connect(app, client, Number(url.port), url.hostname, cb);
  else if (url.protocol === 'unix:') jstp.net.connect(app, client, url.pathname, cb);
  else if (url.protocol === 'ws:') jstp.ws.connect(app, client, {}, target, cb);
  else cb(new Error(`unsupported endpoint ${target}`));
};

let measuring = false;
let done = false;
let count = 0;
const latencies = [];

const drive = (connection) => {
  let i = 0;
  const one = () => {
    const t0 = process.hrtime.bigint();
    connection.callMethod('calculator', 'add', [i++, 1], (err) => {
      if (err) {
        console.error(`call failed: ${err}`);
        process.exit(1);
      }
      if (measuring) {
        count++;
        latencies.push(Number(process.hrtime.bigint() - t0) / 1000);
      }
      if (!done) one();
    });
  };
  for (let k = 0; k < pipeline; k++) one();
};

let ready = 0;
const conns = [];
for (let c = 0; c < connections; c++) {
  connect((err, connection) => {
    if (err) {
      console.error(`connect failed: ${err}`);
      process.exit(1);
    }
    conns.push(connection);
    if (++ready === connections) {
      conns.forEach(drive);
      setTimeout(() => {
        measuring = true;
        const t0 = process.hrtime.bigint();
        setTimeout(() => {
          measuring = false;
          done = true;
          const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
          latencies.sort((a, b) => a - b);
          const q = (p) => latencies.length ? Math.round(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]) : null;
          console.log(JSON.stringify({
            requests: count, seconds, per_sec: count / seconds,
            p50_us: q(0.5), p99_us: q(0.99), p999_us: q(0.999),
          }));
          process.exit(0);
        }, duration * 1000);
      }, warmup * 1000);
    }
  });
}
