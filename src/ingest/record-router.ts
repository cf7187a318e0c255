import type { Hub } from '../hub/hub.js';
import type { AudioJobs } from '../jobs/audio-job.js';
import type { ImageJobs } from '../jobs/image-job.js';
import type { JobProgressRecord, VadResultRecord } from '../pool/tasks.js';
import { decode, type FrameRecord } from '../wire/records.js';
import type { AudioIngest } from './audio-ingest.js';

export interface RecordTargets {
  hub: Hub;
  /** Live camera audio: VAD results of streams `cam/<camera>#<n>`. */
  audio: AudioIngest;
  /** Audio jobs: VAD results of streams `job/<id>`. */
  jobs: AudioJobs;
  /** Image jobs: their workers' progress. */
  imageJobs: ImageJobs;
}

/**
 * The worker pool's `onRecord`: decodes each record a worker wrote to its ring and sends it on.
 * A frame record goes to the hub with its encoded bytes, which WS viewers get as they are (no
 * re-encode per frame); a VAD result goes to the live camera or the audio job that ran it.
 * Records come only from our own workers, so their shape is trusted.
 *
 * @example
 *   new WorkerPool({ ...config.pool, log, metrics, onRecord: routeRecords({ hub, audio, jobs, imageJobs }) })
 */
export function routeRecords({ hub, audio, jobs, imageJobs }: RecordTargets): (bytes: Uint8Array) => void {
  return (bytes) => {
    const record = decode(bytes) as FrameRecord | VadResultRecord | JobProgressRecord;
    if (record.type === 'frame') hub.publishFrame({ ...record, record: bytes });
    else if (record.type === 'vad_result') (record.stream.startsWith('job/') ? jobs : audio).deliver(record);
    else if (record.type === 'job_progress') imageJobs.progress(record);
  };
}
