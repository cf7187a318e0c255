// The process an image job's libvips work runs in: a child of the pool worker that took the job
// (workers/image-job.ts), started at a raised nice value (pool.jobNice) so that on a busy
// machine the OS runs live frames first. A thread's nice value cannot hold libvips to it: the
// encode runs on libvips's and libuv's threads, shared by every pipeline of a process, so the
// jobs get a process of their own. It takes one job at a time over IPC and exits when its
// worker goes (a cancelled or timed-out job terminates the worker thread, which closes the
// channel), killing whatever libvips call was under way.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { FramehubError } from '../src/errors.js';
import { lowerOwnPriority } from '../src/pool/lower-priority.js';
import type { JobProcessReply, JobProcessRequest } from '../src/pool/tasks.js';

lowerOwnPriority(Number(process.argv[2] ?? 0));
// Loaded after the nice value is set, so the threads libvips starts inherit it.
const { default: sharp } = await import('sharp');
const { compressImage } = await import('../src/image/compress.js');
sharp.concurrency(1);
sharp.cache(false);

const reply = (message: JobProcessReply) => process.send!(message);

process.on('disconnect', () => process.exit(0));
process.on('message', (request: JobProcessRequest) => {
  readFile(request.inputPath)
    .then((input) =>
      compressImage(input, request.options, { maxPixels: request.maxPixels }, (progress) =>
        reply({ progress }),
      ),
    )
    .then(
      (result) =>
        reply({
          result: {
            source: result.source,
            outputs: result.outputs.map((out) => ({
              ...out,
              etag: `"${createHash('sha256').update(out.data).digest('base64url').slice(0, 32)}"`,
            })),
            ...(result.placeholder !== undefined && { placeholder: result.placeholder }),
          },
        }),
      (err: unknown) =>
        reply({
          error:
            err instanceof FramehubError
              ? { code: err.code, message: err.message, status: err.status }
              : {
                  code: 'INTERNAL',
                  message: err instanceof Error ? (err.stack ?? err.message) : String(err),
                  status: 500,
                },
        }),
    );
});
