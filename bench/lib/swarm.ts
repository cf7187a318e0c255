import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sleep, withTimeout } from './clock.js';
import { fdLimits } from './proc-stats.js';
import type { SwarmCmd, Tick, WorkerMsg } from './swarm-protocol.js';

const workerPath = fileURLToPath(new URL('./swarm-worker.js', import.meta.url));

interface Member {
  proc: ChildProcess;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  last: Tick;
}

/** Live totals across the swarm, for the progress line and the timeline. */
export interface SwarmLive {
  frames: number;
  bytes: number;
  conns: number;
  /** Client CPU ms summed over processes. */
  cpuMs: number;
}

/**
 * The viewer swarm: N worker processes, so the load generator can use every core the
 * server leaves it, each with its own fd limit and event loop. Commands are request/reply
 * over IPC; every reply is awaited with a timeout.
 */
export class Swarm {
  private nextId = 1;

  private constructor(private readonly members: Member[]) {}

  static async start(procs: number): Promise<Swarm> {
    const members = await Promise.all(
      Array.from({ length: procs }, async () => {
        const proc = fork(workerPath, [], {
          serialization: 'advanced',
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          execArgv: ['--max-old-space-size=4096'],
        });
        const m: Member = {
          proc,
          pending: new Map(),
          last: { ev: 'tick', frames: 0, bytes: 0, conns: 0, cpuMs: 0 },
        };
        proc.on('message', (msg: WorkerMsg) => {
          if (msg.ev === 'tick') m.last = msg;
          else {
            const p = m.pending.get(msg.id);
            m.pending.delete(msg.id);
            if (msg.ok) p?.resolve(msg.data);
            else p?.reject(new Error(`swarm worker ${proc.pid}: ${msg.error}`));
          }
        });
        proc.once('exit', (code) => {
          for (const p of m.pending.values()) p.reject(new Error(`swarm worker exited (${code})`));
          m.pending.clear();
        });
        await withTimeout(
          new Promise<void>((r, j) => {
            proc.once('spawn', () => r());
            proc.once('error', j);
          }),
          10_000,
          'swarm worker start',
        );
        return m;
      }),
    );
    return new Swarm(members);
  }

  get size(): number {
    return this.members.length;
  }

  get pids(): number[] {
    return this.members.map((m) => m.proc.pid!);
  }

  /** The open-file limits each swarm process got (Node raises its soft limit to the hard one). */
  fdLimits(): { soft: number; hard: number } {
    return fdLimits(this.members[0]?.proc.pid ?? 'self');
  }

  /** Sends one command per member (cmds[i] to member i) and awaits every reply. */
  async each<T>(cmds: SwarmCmd[], timeoutMs: number, what: string): Promise<T[]> {
    return Promise.all(
      this.members.map((m, i) => {
        const id = this.nextId++;
        const reply = new Promise<T>((resolve, reject) => {
          m.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        });
        m.proc.send({ ...cmds[i]!, id });
        return withTimeout(reply, timeoutMs, `${what} (swarm worker ${m.proc.pid})`);
      }),
    );
  }

  /** The same command to every member. */
  all<T>(cmd: SwarmCmd, timeoutMs: number, what: string): Promise<T[]> {
    return this.each<T>(
      this.members.map(() => cmd),
      timeoutMs,
      what,
    );
  }

  live(): SwarmLive {
    const out: SwarmLive = { frames: 0, bytes: 0, conns: 0, cpuMs: 0 };
    for (const m of this.members) {
      out.frames += m.last.frames;
      out.bytes += m.last.bytes;
      out.conns += m.last.conns;
      out.cpuMs += m.last.cpuMs;
    }
    return out;
  }

  async close(): Promise<void> {
    const alive = (m: Member) => m.proc.exitCode === null && m.proc.signalCode === null;
    await this.all({ cmd: 'close' }, 5000, 'close viewers').catch((err: Error) => {
      // A worker that does not answer is killed below; its connections die with it.
      process.stderr.write(`swarm: ${err.message}\n`);
    });
    for (const m of this.members) {
      if (alive(m)) await Promise.race([new Promise((r) => m.proc.once('exit', r)), sleep(2000)]);
      if (alive(m)) m.proc.kill('SIGKILL');
    }
  }
}

/** Splits n into `parts` near-equal integers (the first ones get the remainder). */
export function split(n: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(n / parts) + (i < n % parts ? 1 : 0));
}
