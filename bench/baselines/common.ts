import { parseArgs } from 'node:util';
import { Packr } from 'msgpackr';

/**
 * What both reference servers share: the command line, the record shapes and the listening
 * line, so the harness starts and feeds them exactly as it does framehub.
 */
export const packr = new Packr({ useRecords: false });

export interface BaselineOptions {
  port: number;
  /** Size reported in frame records; framehub takes it from its camera config. */
  width: number;
  height: number;
  /** Bytes a viewer may have buffered before frames skip it (framehub's viewers.softBufferBytes default). */
  maxBackpressure: number;
}

export function baselineOptions(argv = process.argv.slice(2)): BaselineOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '0' },
      width: { type: 'string', default: '640' },
      height: { type: 'string', default: '360' },
      'max-backpressure': { type: 'string', default: String(512 * 1024) },
    },
  });
  return {
    port: Number(values.port),
    width: Number(values.width),
    height: Number(values.height),
    maxBackpressure: Number(values['max-backpressure']),
  };
}

/** A published frame as the harness sends it to `/publish` (framehub's push contract). */
export interface PublishRecord {
  type: 'frame';
  camera: string;
  ts: number;
  data: Uint8Array;
}

const CAMERA = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export function asPublishRecord(value: unknown): PublishRecord | undefined {
  const r = value as Partial<PublishRecord> | null;
  if (r?.type !== 'frame' || typeof r.camera !== 'string' || !CAMERA.test(r.camera)) return undefined;
  if (typeof r.ts !== 'number' || !(r.data instanceof Uint8Array)) return undefined;
  return r as PublishRecord;
}

/** framehub's `/publish` answers `{type:'ping', id}` with a pong after the records before it; so do the baselines. */
export function pongFor(value: unknown): Uint8Array | undefined {
  const r = value as { type?: unknown; id?: unknown } | null;
  return r?.type === 'ping' ? packr.pack({ type: 'pong', id: r.id ?? null, ts: Date.now() }) : undefined;
}

/** Viewer topics from `?topics=a,b`, the same query framehub reads. */
export function topicsFromQuery(query: string | null | undefined): string[] {
  const raw = new URLSearchParams(query ?? '').get('topics') ?? '';
  return raw.split(',').filter((t) => /^cam\/[a-z0-9][a-z0-9_-]{0,63}\/raw$/.test(t));
}

/** Latest state per camera: the encoded viewer record (sent to new viewers) and the JPEG. */
export class Latest {
  private readonly seqs = new Map<string, number>();
  readonly records = new Map<string, Uint8Array>();
  readonly jpegs = new Map<string, Uint8Array>();

  constructor(private readonly opts: BaselineOptions) {}

  /** Encodes the viewer record once per frame; the caller fans the same bytes out. */
  accept(r: PublishRecord): { topic: string; record: Uint8Array } {
    const topic = `cam/${r.camera}/raw`;
    const seq = (this.seqs.get(topic) ?? 0) + 1;
    this.seqs.set(topic, seq);
    const record = packr.pack({
      type: 'frame',
      topic,
      seq,
      ts: r.ts,
      mime: 'image/jpeg',
      width: this.opts.width,
      height: this.opts.height,
      data: r.data,
    });
    this.records.set(topic, record);
    this.jpegs.set(r.camera, r.data);
    return { topic, record };
  }
}

export const HEALTH = () => JSON.stringify({ status: 'ok', version: 'baseline' });

/** The line the harness waits for, in the same shape framehub logs. */
export function announce(server: string, port: number): void {
  process.stdout.write(
    `${JSON.stringify({ level: 30, time: Date.now(), msg: 'listening', server, url: `http://127.0.0.1:${port}` })}\n`,
  );
}
