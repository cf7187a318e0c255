// The job process: a child of a pool worker (workers/job-process-client.ts) that runs that
// worker's image jobs and upload previews, one at a time, at a nice value raised by jobs.nice
// above the daemon's, so that on a busy machine the OS runs live frames first. A thread's nice
// value cannot hold libvips to it: an encode runs on libvips's and libuv's threads, shared by
// every pipeline of a process, so the jobs get a process of their own. A cancel or a deadline
// SIGKILLs it mid-call; it also exits when its channel closes (its worker or the daemon gone).
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { FramehubError } from '../src/errors.js';
import { lowerOwnPriority } from '../src/pool/lower-priority.js';
import type { ImageJobTaskResult, JobProcessReply, JobProcessRequest } from '../src/pool/tasks.js';

const nice = lowerOwnPriority(Number(process.argv[2] ?? 0));
// Loaded after the nice value is set, so the threads libvips starts inherit it.
const { default: sharp } = await import('sharp');
const { compressImage } = await import('../src/image/compress.js');
const { previewOf } = await import('../src/image/preview.js');
sharp.concurrency(1);
sharp.cache(false);
// Jobs still run, at the daemon's priority; the daemon's stderr says why.
if (nice.error) process.stderr.write(`framehub job process: ${nice.error}\n`);

const reply = (message: JobProcessReply) => process.send!(message);

async function imageJob(request: Extract<JobProcessRequest, { kind: 'image' }>): Promise<ImageJobTaskResult> {
  const input = await readFile(request.inputPath);
  // Read once, the file is not needed: on a tmpfs dataDir it would hold the input a second time.
  await rm(request.inputPath, { force: true });
  const result = await compressImage(input, request.options, { maxPixels: request.maxPixels }, (progress) =>
    reply({ progress }),
  );
  return {
    source: result.source,
    outputs: result.outputs.map((out) => ({
      ...out,
      etag: `"${createHash('sha256').update(out.data).digest('base64url').slice(0, 32)}"`,
    })),
    ...(result.placeholder !== undefined && { placeholder: result.placeholder }),
  };
}

process.on('disconnect', () => process.exit(0));
process.on('message', (request: JobProcessRequest) => {
  const work =
    request.kind === 'image'
      ? imageJob(request)
      : previewOf(request.path, request.bytes, request.width, request.maxPixels);
  work.then(
    (result) => reply({ result }),
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
