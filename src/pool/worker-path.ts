import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Compiled, this file is dist/src/pool/worker-path.js and the workers sit in dist/workers.
// Under vitest it runs from src/pool as TypeScript, which a worker thread cannot load, so it
// points at the build that `npm test` makes first.
const distRoot = fileURLToPath(import.meta.url).endsWith('.ts')
  ? resolve(here, '../../dist')
  : resolve(here, '../..');

/** Absolute path of a compiled piscina worker entry, e.g. workerPath('image'). */
export function workerPath(name: 'image' | 'image-job' | 'preview' | 'vad'): string {
  return join(distRoot, 'workers', `${name}.js`);
}
