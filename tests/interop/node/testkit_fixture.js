'use strict';

// Fixture for connkit-testkit's own tests of the Node harness.
//
//   --mode=ready   print a line, then `READY hello world`; answer each stdin
//                  line with `echo: <line>`; print `BYE` and exit 0 at stdin end
//   --mode=crash   write to stderr and exit with status 3 before READY
//   --mode=silent  never print READY (exits at stdin end)
//   --mode=peers   require every pinned peer, print `READY <names>`

const mode = (process.argv.find((a) => a.startsWith('--mode=')) || '--mode=ready').slice(7);

const onStdinEnd = (fn) => {
  process.stdin.on('end', fn);
  process.stdin.resume();
};

switch (mode) {
  case 'ready': {
    console.log('starting up');
    console.log('READY hello world');
    let buffered = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (data) => {
      buffered += data;
      let nl;
      while ((nl = buffered.indexOf('\n')) !== -1) {
        console.log(`echo: ${buffered.slice(0, nl)}`);
        buffered = buffered.slice(nl + 1);
      }
    });
    onStdinEnd(() => {
      console.log('BYE');
      process.exit(0);
    });
    break;
  }
  case 'crash':
    console.error('fixture crashing on purpose');
    process.exit(3);
    break;
  case 'silent':
    console.log('not ready yet');
    onStdinEnd(() => process.exit(0));
    break;
  case 'peers': {
    const names = ['@metarhia/jstp', 'mdsf', '@crussell52/socket-ipc', '@connback/core'];
    for (const name of names) require(name);
    console.log(`READY ${names.join(' ')}`);
    onStdinEnd(() => process.exit(0));
    break;
  }
  default:
    console.error(`unknown mode ${mode}`);
    process.exit(2);
}
