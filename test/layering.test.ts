import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

// The dependency rule lives in biome.json (noRestrictedImports per folder). These cases lint a
// planted file in a scratch copy of that config, so the checkout is never touched.
const root = join(import.meta.dirname, '..');
const biome = join(root, 'node_modules', '.bin', 'biome');
const scratch = mkdtempSync(join(tmpdir(), 'framehub-layering-'));
const config = JSON.parse(readFileSync(join(root, 'biome.json'), 'utf8')) as Record<string, unknown>;
delete config.$schema;
config.vcs = { enabled: false };
writeFileSync(join(scratch, 'biome.json'), JSON.stringify(config));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function lint(file: string, importPath: string): { ok: boolean; output: string } {
  const path = join(scratch, file);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `import { x } from '${importPath}';\n\nexport const y = x;\n`);
  const r = spawnSync(biome, ['lint', '--max-diagnostics=5', file], { cwd: scratch, encoding: 'utf8' });
  rmSync(path);
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}` };
}

describe('dependency rule (npm run lint)', () => {
  it.each([
    ['src/hub/planted.ts', '../server/ws.js'],
    ['src/hub/planted.ts', '../ingest/frame-ingest.js'],
    ['src/pool/planted.ts', '../hub/hub.js'],
    ['src/config/planted.ts', '../server/auth.js'],
    ['src/wire/planted.ts', '../pool/worker-pool.js'],
    ['src/ingest/planted.ts', '../server/context.js'],
    ['src/server/planted.ts', '../daemon.js'],
    ['src/viewers/planted.ts', '../server/ws.js'],
    ['src/viewers/planted.ts', 'uWebSockets.js'],
    ['src/uploads/chunk-stream.ts', 'uWebSockets.js'],
    ['src/uploads/tus-store.ts', '../server/http-util.js'],
    ['workers/planted.ts', '../src/vad/stream.js'],
    ['workers/planted.ts', '../src/metrics/metrics.js'],
    ['src/cluster/planted.ts', '../server/ws.js'],
    ['src/cluster/planted.ts', '../ingest/frame-ingest.js'],
    ['src/hub/planted.ts', '../cluster/bus.js'],
  ])('%s importing %s fails', (file, importPath) => {
    const r = lint(file, importPath);
    expect(r.ok).toBe(false);
    expect(r.output).toContain('Dependency rule');
  });

  it.each([
    ['src/server/planted.ts', '../hub/hub.js'],
    ['src/hub/planted.ts', '../pool/worker-pool.js'],
    ['src/vad/planted.ts', '../pool/tasks.js'],
    ['src/uploads/tus-routes.ts', '../server/http-util.js'],
    ['workers/planted.ts', '../src/wire/records.js'],
    ['src/cluster/planted.ts', '../hub/hub.js'],
    ['src/server/planted.ts', '../cluster/bus.js'],
  ])('%s importing %s passes', (file, importPath) => {
    const r = lint(file, importPath);
    expect(r.output).not.toContain('Dependency rule');
    expect(r.ok).toBe(true);
  });
});
