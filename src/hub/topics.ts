import { CAMERA_ID } from '../config/camera-id.js';
import { FRAME_VARIANTS, type FrameVariant } from '../image/variant-names.js';

export type Topic =
  | { kind: 'frame'; camera: string; variant: FrameVariant }
  | { kind: 'auto'; camera: string }
  | { kind: 'vad'; camera: string }
  | { kind: 'video'; camera: string }
  | { kind: 'job'; id: string }
  | { kind: 'system' };

const JOB_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Parses a topic name (DESIGN.md "Topics"); undefined when it is not well-formed.
 *
 * @example
 *   parseTopic('cam/demo/low') // { kind: 'frame', camera: 'demo', variant: 'low' }
 */
export function parseTopic(name: string): Topic | undefined {
  // Typed as a string, but reached by decoded client values too: anything else is not a topic.
  if (typeof name !== 'string') return undefined;
  if (name === 'system') return { kind: 'system' };
  const parts = name.split('/');
  if (parts[0] === 'job' && parts.length === 2 && JOB_ID.test(parts[1]!))
    return { kind: 'job', id: parts[1]! };
  if (parts[0] !== 'cam' || parts.length !== 3 || !CAMERA_ID.test(parts[1]!)) return undefined;
  const [, camera, leaf] = parts as [string, string, string];
  if (leaf === 'vad') return { kind: 'vad', camera };
  if (leaf === 'video') return { kind: 'video', camera };
  if (leaf === 'auto') return { kind: 'auto', camera };
  if ((FRAME_VARIANTS as readonly string[]).includes(leaf))
    return { kind: 'frame', camera, variant: leaf as FrameVariant };
  return undefined;
}

/** Whether a topic carries frames (`cam/<id>/<variant>`): the latest frame wins, nothing is replayed. */
export function isFrameTopic(name: string): boolean {
  return parseTopic(name)?.kind === 'frame';
}

/** Whether a topic carries live video (`cam/<id>/video`): init and fragments, resumed at a keyframe. */
export function isVideoTopic(name: string): boolean {
  return parseTopic(name)?.kind === 'video';
}

/** The live video topic of a camera. */
export const videoTopic = (camera: string) => `cam/${camera}/video`;

/** Whether a topic carries events (`cam/<id>/vad`, `job/<id>`, `system`): kept in history, resumable. */
export function isEventTopic(name: string): boolean {
  const kind = parseTopic(name)?.kind;
  return kind === 'vad' || kind === 'job' || kind === 'system';
}

/**
 * A client value as safe text for an error message: a string quoted and cut to `max`
 * characters, anything else by its type. Never calls the value's own toString (a decoded map
 * can carry a `toString` key, and String() on it throws).
 */
export function describeInput(value: unknown, max = 100): string {
  return typeof value === 'string'
    ? JSON.stringify(value.slice(0, max))
    : `a ${value === null ? 'null' : typeof value}`;
}
