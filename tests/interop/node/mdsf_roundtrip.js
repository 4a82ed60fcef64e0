'use strict';

// Differential peer for connkit-jstp's value serializer and parser
// (crates/connkit-jstp/tests/mdsf_differential.rs), using the pinned mdsf.
//
// Prints `READY`, then answers one stdin line with one stdout line:
//
//   `stringify <json>`  -> {"ok": mdsf.stringify(JSON.parse(json))}
//   `parse <json string>` -> {"ok": tag(mdsf.parse(string))}
//
// Replies are JSON so that any bytes survive the line protocol. `tag` spells
// out what JSON cannot carry: `undefined` is {"u":1}, an array is {"a":[...]}
// (element by element, so holes show), an object is {"o":[[key, value], ...]}
// in Object.keys order, and a number is {"n":"<String(n)>"} ("-0" for -0) so
// Rust reads it with a correctly rounded parser. Errors come back as
// {"error": "<message>"}. Exits when stdin ends.

const readline = require('readline');
const mdsf = require('mdsf');

const tag = (v) => {
  if (v === undefined) return { u: 1 };
  if (v === null) return null;
  if (Array.isArray(v)) {
    const a = [];
    for (let i = 0; i < v.length; i++) a.push(tag(v[i]));
    return { a };
  }
  switch (typeof v) {
    case 'number':
      return { n: Object.is(v, -0) ? '-0' : String(v) };
    case 'string':
    case 'boolean':
      return v;
    case 'object':
      return { o: Object.keys(v).map((k) => [k, tag(v[k])]) };
    default:
      return { other: typeof v };
  }
};

const answer = (line) => {
  const space = line.indexOf(' ');
  const mode = line.slice(0, space);
  const payload = JSON.parse(line.slice(space + 1));
  if (mode === 'stringify') return { ok: mdsf.stringify(payload) };
  if (mode === 'parse') return { ok: tag(mdsf.parse(payload)) };
  return { error: `unknown mode ${mode}` };
};

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  let reply;
  try {
    reply = answer(line);
  } catch (err) {
    reply = { error: String(err) };
  }
  process.stdout.write(JSON.stringify(reply) + '\n');
});
rl.on('close', () => process.exit(0));
process.stdout.write('READY\n');
