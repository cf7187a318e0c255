import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { FramehubError, RetryLaterError } from '../errors.js';
import type { Logger } from '../log.js';

/** A tus upload id: a random (v4) UUID, lowercase. Anything else is refused before it nears a path. */
const UPLOAD_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * One upload as the store keeps it. The object is live: `offset` and `expiresAt` move as chunks
 * are written, so a hook may hold it. Bytes `[0, offset)` of `store.filePath(upload)` are on disk.
 */
export interface TusUpload {
  readonly id: string;
  /** Upload-Length: the size the upload will have once complete. */
  readonly length: number;
  readonly offset: number;
  /** Upload-Metadata, values decoded as UTF-8. */
  readonly metadata: Readonly<Record<string, string>>;
  /** `sub` of the token that created it; others (admins aside) are told it does not exist. */
  readonly owner: string;
  readonly createdAt: number;
  /** ms since the epoch; moved on by every chunk written (expiration after inactivity). */
  readonly expiresAt: number;
  /** A PATCH is writing to it: a second one, and termination, are refused until it ends. */
  readonly locked: boolean;
}

export interface TusStoreOptions {
  dir: string;
  /** Largest Upload-Length accepted (Tus-Max-Size). */
  maxUploadBytes: number;
  /** Uploads on disk at once, complete or not: with maxUploadBytes it bounds the disk used. */
  maxUploads: number;
  /** An upload nobody wrote to for this long expires (410), then is deleted by the sweep. */
  expireMs: number;
  /** How often expired uploads are deleted; default min(expireMs, 60 s). */
  sweepIntervalMs?: number;
  /**
   * The upload is gone (terminated, removed, or swept once expired): drop what was kept for it
   * (a preview, say). Not called for what open() deletes, which nobody has seen yet.
   */
  onRemoved?(upload: TusUpload): void;
  log: Pick<Logger, 'warn' | 'error'>;
}

/**
 * Appends to one upload while holding its lock (see TusStore.openWriter). Calls must not
 * overlap: append the next chunk once the previous one resolved.
 */
export interface UploadWriter {
  append(chunk: Uint8Array): Promise<void>;
  /** Closes the file, records the offset in the `.json` and releases the lock. Call it once, always. */
  close(): Promise<void>;
}

/** 404, also for an upload someone else owns (tus-routes.ts): it does not say the id exists. */
export const uploadNotFound = () => new FramehubError('NOT_FOUND', 'no such upload (uploads expire)', 404);
const uploadExpired = () => new FramehubError('UPLOAD_EXPIRED', 'upload expired', 410);
const uploadLocked = () =>
  new FramehubError('UPLOAD_LOCKED', 'another request is writing to this upload; retry later', 423);

type StoredUpload = { -readonly [K in keyof TusUpload]: TusUpload[K] };

/** What `<id>.json` holds. The offset is informative: the `.bin`'s size is the truth on reload. */
const recordSchema = z.strictObject({
  length: z.number().int().min(0),
  offset: z.number().int().min(0),
  metadata: z.record(z.string(), z.string()),
  owner: z.string(),
  createdAt: z.number().int().min(0),
  expiresAt: z.number().int().min(0),
});

/**
 * tus uploads on disk: each is `<id>.bin` (the bytes, written at the offset one chunk at a time,
 * never held whole in memory) and `<id>.json` (length, offset, metadata, owner, times), the
 * latter replaced atomically (write a temp file, rename) at creation and after each PATCH. A
 * restart, or a crash, loses nothing already written: open() takes the offset from the `.bin`'s
 * size (never past the length), so bytes that landed after the last `.json` still count. A
 * power cut can lose the tail the OS had not flushed: there is no fsync, which would cost a disk
 * flush per chunk.
 *
 * @example
 *   const store = await TusStore.open({ dir, maxUploadBytes: 1 << 30, maxUploads: 64, expireMs: 3_600_000, log });
 *   const upload = await store.create(1024, { filename: 'a.jpg' }, 'anonymous');
 *   const writer = await store.openWriter(upload);
 *   try { await writer.append(bytes); } finally { await writer.close(); }
 */
export class TusStore {
  private readonly uploads = new Map<string, StoredUpload>();
  /** Creations under way count against maxUploads before their files exist. */
  private creating = 0;
  /** Each open writer, resolved once it is closed and its offset recorded. */
  private readonly writing = new Set<Promise<void>>();
  private readonly sweepTimer: NodeJS.Timeout;

  private constructor(readonly opts: TusStoreOptions) {
    const every = opts.sweepIntervalMs ?? Math.min(opts.expireMs, 60_000);
    this.sweepTimer = setInterval(() => {
      this.sweep().catch((err: unknown) => opts.log.error({ err }, 'tus sweep failed'));
    }, every);
    this.sweepTimer.unref();
  }

  /** Creates the directory if needed, reloads the uploads in it and deletes the expired ones. */
  static async open(opts: TusStoreOptions): Promise<TusStore> {
    await mkdir(opts.dir, { recursive: true });
    const store = new TusStore(opts);
    await store.reload();
    return store;
  }

  get size(): number {
    return this.uploads.size;
  }

  /**
   * Where the upload's bytes are; `[0, offset)` are written, and stay until the upload is
   * removed (onRemoved). Only the id is read, so any view of the upload will do.
   */
  filePath(upload: Pick<TusUpload, 'id'>): string {
    return this.binPath(upload.id);
  }

  /**
   * The upload, or a refusal: 404 `NOT_FOUND` for an id that is not a UUID or not stored (also
   * once an expired upload was swept), 410 `UPLOAD_EXPIRED` for one that expired and is not
   * swept yet.
   */
  get(id: string): TusUpload {
    const upload = UPLOAD_ID.test(id) ? this.uploads.get(id) : undefined;
    if (!upload) throw uploadNotFound();
    if (this.expired(upload)) throw uploadExpired();
    return upload;
  }

  /** Every upload held, expired ones not swept yet included (for a start-up pass over completed ones, say). */
  list(): TusUpload[] {
    return [...this.uploads.values()];
  }

  /**
   * A new empty upload. Refuses 413 `TOO_LARGE` past maxUploadBytes and 429 `RATE_LIMITED`
   * (Retry-After) when maxUploads are on disk.
   */
  async create(length: number, metadata: Record<string, string>, owner: string): Promise<TusUpload> {
    if (length > this.opts.maxUploadBytes) {
      throw new FramehubError(
        'TOO_LARGE',
        `Upload-Length over the maximum of ${this.opts.maxUploadBytes}`,
        413,
      );
    }
    if (this.uploads.size + this.creating >= this.opts.maxUploads) {
      throw new RetryLaterError(
        'RATE_LIMITED',
        `${this.opts.maxUploads} uploads are already stored`,
        429,
        60,
      );
    }
    this.creating++;
    try {
      const now = Date.now();
      const upload: StoredUpload = {
        id: randomUUID(),
        length,
        offset: 0,
        metadata,
        owner,
        createdAt: now,
        expiresAt: now + this.opts.expireMs,
        locked: false,
      };
      // `wx`: a UUID collision (or a leftover file) fails rather than sharing bytes.
      await writeFile(this.binPath(upload.id), new Uint8Array(0), { flag: 'wx' });
      await this.persist(upload).catch(async (err: unknown) => {
        await rm(this.binPath(upload.id), { force: true });
        throw err;
      });
      this.uploads.set(upload.id, upload);
      return upload;
    } finally {
      this.creating--;
    }
  }

  /**
   * Takes the upload's lock (423 `UPLOAD_LOCKED` when a PATCH already holds it) and opens its `.bin` for
   * writing at the offset. Each append moves the offset and the expiry on.
   */
  async openWriter(view: TusUpload): Promise<UploadWriter> {
    const upload = this.stored(view);
    if (upload.locked) throw uploadLocked();
    upload.locked = true;
    let file: Awaited<ReturnType<typeof open>>;
    try {
      file = await open(this.binPath(upload.id), 'r+');
    } catch (err) {
      upload.locked = false;
      throw err;
    }
    let closed: Promise<void> | undefined;
    let markClosed = () => {};
    const whenClosed = new Promise<void>((resolve) => {
      markClosed = resolve;
    });
    this.writing.add(whenClosed);
    const append = async (chunk: Uint8Array) => {
      if (upload.offset + chunk.byteLength > upload.length) throw new Error('append past Upload-Length');
      // A positional write may stop short; the offset counts only the bytes that reached the file.
      for (let done = 0; done < chunk.byteLength; ) {
        const { bytesWritten } = await file.write(chunk, done, chunk.byteLength - done, upload.offset);
        done += bytesWritten;
        upload.offset += bytesWritten;
      }
      upload.expiresAt = Date.now() + this.opts.expireMs;
    };
    const finish = async () => {
      try {
        await file.close();
        await this.persist(upload);
      } finally {
        upload.locked = false;
        this.writing.delete(whenClosed);
        markClosed();
      }
    };
    return { append, close: () => (closed ??= finish()) };
  }

  /** Termination: forgets the upload and deletes its files; 423 while a PATCH holds it. */
  async remove(view: TusUpload): Promise<void> {
    const upload = this.stored(view);
    if (upload.locked) throw uploadLocked();
    await this.forget(upload.id);
  }

  /** Deletes every expired upload no PATCH holds; runs on a timer, and may be called directly. */
  async sweep(): Promise<void> {
    const expired = [...this.uploads.values()].filter((u) => this.expired(u));
    await Promise.all(expired.map((u) => this.forget(u.id)));
  }

  /**
   * Stops the sweep and waits for every open writer to close, so each offset is in its `.json`.
   * A writer closes when its request ends: close the app (which aborts them) first.
   */
  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    await Promise.all([...this.writing]);
  }

  /** A hook that throws must not stop the sweep or a termination: logged, not thrown. */
  private removed(upload: TusUpload): void {
    try {
      this.opts.onRemoved?.(upload);
    } catch (err) {
      this.opts.log.error({ err, upload: upload.id }, 'tus onRemoved hook threw');
    }
  }

  private expired(upload: StoredUpload): boolean {
    return !upload.locked && Date.now() >= upload.expiresAt;
  }

  private stored(view: TusUpload): StoredUpload {
    const upload = this.uploads.get(view.id);
    if (!upload) throw uploadNotFound();
    return upload;
  }

  private binPath(id: string): string {
    return join(this.opts.dir, `${id}.bin`);
  }

  private jsonPath(id: string): string {
    return join(this.opts.dir, `${id}.json`);
  }

  /** Forgotten first, so no request finds it while its files go. */
  private async forget(id: string): Promise<void> {
    const upload = this.uploads.get(id);
    this.uploads.delete(id);
    if (upload) this.removed(upload);
    await Promise.all([rm(this.jsonPath(id), { force: true }), rm(this.binPath(id), { force: true })]);
  }

  private async persist(upload: StoredUpload): Promise<void> {
    const { length, offset, metadata, owner, createdAt, expiresAt } = upload;
    const temp = `${this.jsonPath(upload.id)}.tmp`;
    await writeFile(temp, JSON.stringify({ length, offset, metadata, owner, createdAt, expiresAt }));
    await rename(temp, this.jsonPath(upload.id));
  }

  /**
   * Loads every `<uuid>.json`. A record that does not parse, or whose `.bin` is gone, is deleted
   * with a warning; so are expired uploads, `.tmp` files (a persist cut short) and `.bin` files
   * without a record (a creation cut short). Other files are left alone.
   */
  private async reload(): Promise<void> {
    const names = await readdir(this.opts.dir);
    const ids = names.filter((n) => n.endsWith('.json')).map((n) => n.slice(0, -'.json'.length));
    for (const id of ids.filter((i) => UPLOAD_ID.test(i))) await this.reloadOne(id);
    const leftovers = names.filter((n) => {
      if (n.endsWith('.json.tmp')) return UPLOAD_ID.test(n.slice(0, -'.json.tmp'.length));
      return n.endsWith('.bin') && UPLOAD_ID.test(n.slice(0, -4)) && !this.uploads.has(n.slice(0, -4));
    });
    await Promise.all(leftovers.map((n) => rm(join(this.opts.dir, n), { force: true })));
  }

  private async reloadOne(id: string): Promise<void> {
    let upload: StoredUpload;
    let binSize: number;
    try {
      const record = recordSchema.parse(JSON.parse(await readFile(this.jsonPath(id), 'utf8')));
      binSize = (await stat(this.binPath(id))).size;
      upload = { ...record, id, locked: false };
    } catch (err) {
      this.opts.log.warn({ err, id }, 'tus upload record unreadable or its data missing; deleted');
      await this.forget(id);
      return;
    }
    if (this.expired(upload)) {
      await this.forget(id);
      return;
    }
    // Bytes past the length cannot come from this store; cut them rather than serve them.
    if (binSize > upload.length) await truncate(this.binPath(id), upload.length);
    const offset = Math.min(binSize, upload.length);
    this.uploads.set(id, upload);
    if (offset !== upload.offset) {
      upload.offset = offset;
      await this.persist(upload);
    }
  }
}
