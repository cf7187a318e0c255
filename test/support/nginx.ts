import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pollUntil, root } from '../helpers.js';

/** Debian's nginx, the reverse proxy the README's config is tested with. */
export const NGINX = '/usr/sbin/nginx';

/** The config the README shows (README "Behind a reverse proxy"): a `server` block and what it needs at `http` level. */
export const NGINX_CONF = join(root, 'docs', 'nginx.conf');

export interface RunningNginx {
  /** `http://127.0.0.1:<port>` */
  url: string;
  port: number;
  dir: string;
  /** nginx's error log so far, for a failing test's message. */
  errors(): string;
  stop(): Promise<void>;
}

/** A port free on 127.0.0.1 right now (nginx cannot listen on port 0 and report the port). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * docs/nginx.conf with only the ports changed: nginx's `listen 80;` becomes this test's port
 * (bound to 127.0.0.1, so the test never listens on other interfaces) and the upstream's
 * `127.0.0.1:8080` the daemon's port. Throws if either line moved, so the test cannot quietly
 * run a config other than the documented one.
 */
export function documentedConfig(listenPort: number, daemonPort: number | readonly number[]): string {
  const text = readFileSync(NGINX_CONF, 'utf8');
  const listen = '    listen 80;\n';
  const upstream = '    server 127.0.0.1:8080;\n';
  if (!text.includes(listen) || !text.includes(upstream)) {
    throw new Error(`${NGINX_CONF} no longer has "${listen.trim()}" and "${upstream.trim()}"`);
  }
  return text.replace(listen, `    listen 127.0.0.1:${listenPort};\n`).replace(
    upstream,
    // Several daemons (cluster nodes): one `server` line each, balanced round-robin.
    [daemonPort]
      .flat()
      .map((p) => `    server 127.0.0.1:${p};\n`)
      .join(''),
  );
}

/**
 * Starts nginx as a child in the foreground (`-p <tmpdir> -c <conf> -e <log> -g 'daemon off;'`),
 * with the documented config inside a minimal `http` block whose logs, pid and temp files live
 * in the tmpdir, and waits until it answers. One process (`master_process off`): as root, a
 * master would hand requests to workers running as `nobody`, which cannot write the tmpdir.
 */
export async function startNginx(
  daemonPort: number | readonly number[],
  /** What goes inside `http { }` (given nginx's port and the tmpdir); by default docs/nginx.conf. */
  render: (listenPort: number, dir: string) => string = (listenPort) =>
    documentedConfig(listenPort, daemonPort),
): Promise<RunningNginx> {
  const dir = mkdtempSync(join(tmpdir(), 'framehub-nginx-'));
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    [
      'master_process off;',
      `pid ${dir}/nginx.pid;`,
      `error_log ${dir}/error.log info;`,
      'events { worker_connections 1024; }',
      'http {',
      `  access_log ${dir}/access.log;`,
      `  client_body_temp_path ${dir}/client_body;`,
      `  proxy_temp_path ${dir}/proxy;`,
      `  fastcgi_temp_path ${dir}/fastcgi;`,
      `  uwsgi_temp_path ${dir}/uwsgi;`,
      `  scgi_temp_path ${dir}/scgi;`,
      render(port, dir),
      '}',
      '',
    ].join('\n'),
  );
  const proc: ChildProcess = spawn(
    NGINX,
    ['-p', dir, '-c', conf, '-e', join(dir, 'error.log'), '-g', 'daemon off;'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  proc.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  const errors = () => {
    try {
      return `${output}${readFileSync(join(dir, 'error.log'), 'utf8')}`;
    } catch {
      return output;
    }
  };
  const url = `http://127.0.0.1:${port}`;
  const up = await pollUntil(async () => {
    if (proc.exitCode !== null) return true;
    // Any answer from nginx will do (/metrics is denied: nginx's own 403, no daemon needed).
    return fetch(`${url}/metrics`).then(
      (r) => r.status === 403,
      () => false,
    );
  }, 10_000);
  if (!up || proc.exitCode !== null) {
    proc.kill('SIGKILL');
    throw new Error(`nginx did not start: ${errors().slice(-2000)}`);
  }
  return {
    url,
    port,
    dir,
    errors,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
