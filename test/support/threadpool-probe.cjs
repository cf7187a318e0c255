// Preloaded into a daemon by test/threadpool.test.ts (`--require`), after the daemon's own
// preload. It measures the process's real libuv thread pool: on {block: n} from the test (IPC)
// it ties up n pool threads, each in an open() of a FIFO nobody writes to, then queues one
// fs.stat behind them. The stat can only finish on an (n+1)th pool thread, so {statDone}
// means "the pool has more than n threads"; with n or fewer it never comes. Afterwards each
// FIFO is opened read-write, which ends the blocked open()s, and everything is closed.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

process.on('message', (message) => {
  if (typeof message?.block !== 'number') return;
  const dir = fs.mkdtempSync(join(tmpdir(), 'framehub-uv-probe-'));
  const fifos = Array.from({ length: message.block }, (_, i) => join(dir, `fifo${i}`));
  execFileSync('mkfifo', fifos);
  const blocked = fifos.map(
    (fifo) =>
      new Promise((resolve, reject) => fs.open(fifo, 'r', (err, fd) => (err ? reject(err) : resolve(fd)))),
  );
  fs.stat(dir, (err) => {
    process.send({ statDone: !err });
    const writers = fifos.map((fifo) => fs.openSync(fifo, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
    Promise.all(blocked).then((fds) => {
      for (const fd of [...fds, ...writers]) fs.closeSync(fd);
      fs.rmSync(dir, { recursive: true, force: true });
      process.send({ released: true });
    });
  });
});
