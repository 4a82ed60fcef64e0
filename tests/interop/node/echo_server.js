'use strict';

// Smoke-test peer for connkit's delimiter framing, built only on Node's `net`.
//
// Listens on 127.0.0.1 port 0, prints `READY <port>`, and echoes every frame
// it receives back to the sender followed by the delimiter. Frames are
// delimited by one NUL byte (`\0`, as JSTP uses), or by two (`\0\0`, as
// @crussell52/socket-ipc uses) when started with `--delim=2`.
//
// The server exits when its stdin ends, so it never outlives the test that
// started it.

const net = require('net');

const parseDelimiter = (argv) => {
  let len = 1;
  for (const arg of argv) {
    if (arg.startsWith('--delim=')) {
      len = Number(arg.slice('--delim='.length));
    } else {
      throw new Error(`unknown argument ${arg}`);
    }
  }
  if (len !== 1 && len !== 2) {
    throw new Error(`--delim must be 1 or 2, got ${len}`);
  }
  return Buffer.alloc(len, 0);
};

const DELIM = parseDelimiter(process.argv.slice(2));

const server = net.createServer((socket) => {
  socket.setNoDelay(true);
  let pending = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    // Only the bytes that may hold the start of a delimiter split across
    // chunks need searching again.
    const searchFrom = Math.max(0, pending.length - (DELIM.length - 1));
    const buf = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    let start = 0;
    let idx = buf.indexOf(DELIM, searchFrom);
    while (idx !== -1) {
      socket.write(Buffer.concat([buf.subarray(start, idx), DELIM]));
      start = idx + DELIM.length;
      idx = buf.indexOf(DELIM, start);
    }
    // Copy the tail so the big chunk it came from can be freed.
    pending = Buffer.from(buf.subarray(start));
  });
  socket.on('error', (err) => console.error(`echo_server socket error: ${err.message}`));
});

server.on('error', (err) => {
  console.error(`echo_server listen error: ${err.stack}`);
  process.exit(1);
});

server.listen(0, '127.0.0.1', () => {
  console.log(`READY ${server.address().port}`);
});

process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
