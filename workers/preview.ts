// Piscina task: a preview of an upload still arriving (src/image/preview.ts), made in this
// worker's job process, like an image job, so a preview that overruns its 5 s is killed there.

import type { JobProcessFields, PreviewTask, PreviewTaskResult } from '../src/pool/tasks.js';
import { inJobProcess } from './job-process-client.js';

export default function previewTask(task: PreviewTask & JobProcessFields): Promise<PreviewTaskResult> {
  const { path, bytes, width, maxPixels } = task;
  return inJobProcess({ kind: 'preview', path, bytes, width, maxPixels }, task);
}
