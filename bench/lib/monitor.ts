import { performance } from 'node:perf_hooks';
import { type MachineCpu, machineBusy, type ProcSample, sampleMachine, sampleProc } from './proc-stats.js';
import type { Swarm } from './swarm.js';

/** One point of a run's timeline (the "over time" charts), once a second. */
export interface TimelinePoint {
  /** Seconds since the run started. */
  t: number;
  phase: string;
  serverCpuPct: number | null;
  serverRssMiB: number | null;
  serverFds: number | null;
  conns: number;
  framesPerSec: number;
  mbPerSec: number;
  /** Client CPU (swarm + harness), % of one core. */
  clientCpuPct: number;
  machineBusyPct: number;
}

const MiB = 2 ** 20;

/**
 * Samples the server process, the swarm and the machine once a second during a run, and
 * draws the progress line: elapsed time, connections and live throughput.
 */
export class Monitor {
  readonly timeline: TimelinePoint[] = [];
  private readonly t0 = performance.now();
  private timer: NodeJS.Timeout | undefined;
  private prevServer: ProcSample | undefined;
  private prevMachine: MachineCpu = sampleMachine();
  private prevSwarm = { frames: 0, bytes: 0, cpuMs: 0 };
  private prevSelfCpu = process.cpuUsage();
  private prevAt = performance.now();
  private phase = 'start';
  private lastLine = 0;
  /** Live text for the progress line when the load is not a swarm (e.g. autocannon's req/s). */
  extra = '';

  constructor(
    private readonly pid: number | undefined,
    private readonly swarm: Swarm | undefined,
    private readonly progress: { label: string; totalSeconds: number; quiet: boolean },
  ) {
    this.prevServer = pid ? sampleProc(pid) : undefined;
    if (this.swarm) this.prevSwarm = { ...this.swarm.live() };
  }

  start(): void {
    this.timer = setInterval(() => this.sample(), 1000);
  }

  setPhase(phase: string): void {
    this.phase = phase;
  }

  /** A point sample of the server now (also used for before/after figures). */
  server(): ProcSample | undefined {
    return this.pid ? sampleProc(this.pid) : undefined;
  }

  elapsed(): number {
    return (performance.now() - this.t0) / 1000;
  }

  private sample(): void {
    const now = performance.now();
    const dt = (now - this.prevAt) / 1000;
    this.prevAt = now;
    const server = this.server();
    const machine = sampleMachine();
    const live = this.swarm?.live() ?? { frames: 0, bytes: 0, conns: 0, cpuMs: 0 };
    const self = process.cpuUsage(this.prevSelfCpu);
    this.prevSelfCpu = process.cpuUsage();
    const clientMs = live.cpuMs - this.prevSwarm.cpuMs + (self.user + self.system) / 1000;
    const point: TimelinePoint = {
      t: Math.round(this.elapsed() * 10) / 10,
      phase: this.phase,
      serverCpuPct:
        server && this.prevServer
          ? round1(((server.cpuSeconds - this.prevServer.cpuSeconds) / dt) * 100)
          : null,
      serverRssMiB: server ? round1(server.rssBytes / MiB) : null,
      serverFds: server ? server.fds : null,
      conns: live.conns,
      framesPerSec: Math.round((live.frames - this.prevSwarm.frames) / dt),
      mbPerSec: round1((live.bytes - this.prevSwarm.bytes) / dt / 1e6),
      clientCpuPct: round1((clientMs / 1000 / dt) * 100),
      machineBusyPct: round1(machineBusy(this.prevMachine, machine) * 100),
    };
    this.prevServer = server ?? this.prevServer;
    this.prevMachine = machine;
    this.prevSwarm = { frames: live.frames, bytes: live.bytes, cpuMs: live.cpuMs };
    this.timeline.push(point);
    this.draw(point);
  }

  private draw(p: TimelinePoint): void {
    if (this.progress.quiet) return;
    const tty = process.stderr.isTTY;
    // Without a terminal, a line every 5 s keeps CI logs readable.
    if (!tty && p.t - this.lastLine < 5) return;
    this.lastLine = p.t;
    const line =
      `[${this.progress.label}] ${p.phase} ${p.t.toFixed(0)}s/${this.progress.totalSeconds}s ` +
      (this.extra || `conns ${p.conns} · ${p.framesPerSec} frames/s · ${p.mbPerSec} MB/s`) +
      ' · ' +
      `server ${p.serverCpuPct ?? '?'}% CPU ${p.serverRssMiB ?? '?'} MiB · client ${p.clientCpuPct}% CPU`;
    process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  }

  stop(): void {
    clearInterval(this.timer);
    if (!this.progress.quiet && process.stderr.isTTY) process.stderr.write('\n');
  }
}

export const round1 = (v: number) => Math.round(v * 10) / 10;
export const round3 = (v: number) => Math.round(v * 1000) / 1000;
