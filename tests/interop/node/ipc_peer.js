'use strict';

// A @crussell52/socket-ipc 0.4.0 peer for connkit's interop tests.
//
//   node ipc_peer.js server <socket> [--echo]   a library Server
//   node ipc_peer.js client <socket>            a library Client (retry/reconnect every 50 ms)
//   node ipc_peer.js encode                     the library's JSON encoder, as a filter
//
// Every mode prints `READY` once it can take commands, then one JSON object per line for each
// event. Commands arrive on stdin, one JSON object per line:
//   {"cmd":"send","topic":"t","message":…}          client: send; `message` absent = undefined
//   {"cmd":"send","topic":"t","message":…,"client":id}   server: send to one client
//   {"cmd":"broadcast","topic":"t","message":…}     server
//   {"cmd":"raw","data":"…","chunk":n[,"client":id]}  write raw text to the socket, n bytes per write
//   {"cmd":"close"}
// In encode mode each stdin line is {"topic":…,"message":…}; the answer is {"hex": <frame bytes>}.
// The process exits when stdin ends.

const ipc = require('@crussell52/socket-ipc');
const readline = require('readline');

const [mode, socketFile, ...flags] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const describe = (message) =>
  message === undefined ? { has_message: false } : { has_message: true, message };

// Write `data` in pieces of `chunk` bytes, one write per event-loop turn.
const writeChunked = (socket, data, chunk) => {
  const buf = Buffer.from(data, 'utf8');
  const size = chunk > 0 ? chunk : buf.length;
  let at = 0;
  const next = () => {
    if (at >= buf.length) return;
    socket.write(buf.subarray(at, at + size));
    at += size;
    setImmediate(next);
  };
  next();
};

const commands = (handler) => {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    handler(JSON.parse(line));
  });
  rl.on('close', () => process.exit(0));
};

if (mode === 'server') {
  const echo = flags.includes('--echo');
  const server = new ipc.Server({ socketFile });
  const sockets = new Map();
  server.on('listening', () => {
    out({ event: 'listening' });
    console.log('READY');
  });
  server.on('connection', (client, socket) => {
    sockets.set(client, socket);
    // Without this, a vanished client crashes the library server (EPIPE); keep the peer alive.
    socket.on('error', (e) => out({ event: 'socket_error', client, error: String(e.message) }));
    socket.on('close', () => sockets.delete(client));
    out({ event: 'connection', client });
  });
  server.on('message', (message, topic, client) => {
    out({ event: 'message', topic, client, ...describe(message) });
    if (echo) server.send(topic, message, client);
  });
  server.on('error', (e) => out({ event: 'error', error: String(e && e.message) }));
  server.on('close', () => out({ event: 'close' }));
  commands((c) => {
    if (c.cmd === 'send') server.send(c.topic, c.message, c.client);
    else if (c.cmd === 'broadcast') server.broadcast(c.topic, c.message);
    else if (c.cmd === 'raw') writeChunked(sockets.get(c.client), c.data, c.chunk);
    else if (c.cmd === 'close') server.close();
  });
  server.listen();
} else if (mode === 'client') {
  const client = new ipc.Client({ socketFile, retryDelay: 50, reconnectDelay: 50 });
  let socket = null;
  client.on('connect', (s) => {
    socket = s;
    out({ event: 'connect' });
  });
  client.on('reconnect', () => out({ event: 'reconnect' }));
  client.on('disconnect', () => out({ event: 'disconnect' }));
  client.on('connectError', (e) => out({ event: 'connect_error', error: String(e.code || e.message) }));
  client.on('message', (message, topic) => out({ event: 'message', topic, ...describe(message) }));
  client.on('error', (e) => out({ event: 'error', error: String(e && e.message) }));
  client.on('close', () => out({ event: 'close' }));
  commands((c) => {
    if (c.cmd === 'send') {
      if ('message' in c) client.send(c.topic, c.message);
      else client.send(c.topic);
    } else if (c.cmd === 'raw') writeChunked(socket, c.data, c.chunk);
    else if (c.cmd === 'close') client.close();
  });
  console.log('READY');
  client.connect();
} else if (mode === 'encode') {
  const transcoder = require('@crussell52/socket-ipc/src/lib/transcoder/jsonTranscoder');
  const encode = transcoder.createEncoder();
  commands((wrapper) => {
    encode(wrapper, (err, data) => {
      if (err) out({ error: String(err.message) });
      else out({ hex: Buffer.from(data, 'utf8').toString('hex') });
    });
  });
  console.log('READY');
} else {
  console.error(`usage: ipc_peer.js server|client|encode …`);
  process.exit(2);
}
