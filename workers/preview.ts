// Piscina task: a small JPEG from the part of an upload that has arrived. libvips decodes a
// truncated JPEG or PNG as far as its data goes (`failOn: 'none'`); the rest comes out grey.
import { open } from 'node:fs/promises';
import sharp from 'sharp';
import { FramehubError } from '../src/errors.js';
import type { PreviewTask, PreviewTaskResult } from '../src/pool/tasks.js';

export default async function previewTask(task: PreviewTask): Promise<PreviewTaskResult> {
  const file = await open(task.path, 'r');
  const head = Buffer.alloc(task.bytes);
  try {
    await file.read(head, 0, task.bytes, 0);
  } finally {
    await file.close();
  }
  try {
    const { data, info } = await sharp(head, { failOn: 'none', limitInputPixels: task.maxPixels })
      .rotate()
      .resize({ width: task.width, withoutEnlargement: true })
      .jpeg({ quality: 60 })
      .toBuffer({ resolveWithObject: true });
    return { jpeg: data, width: info.width, height: info.height };
  } catch (err) {
    const refusal = new FramehubError('CORRUPT_IMAGE', 'not enough of the image has arrived to preview', 422);
    refusal.cause = err;
    throw refusal;
  }
}
