// Builds the optional VAD addon in native/ during `npm install`.
// The addon is an accelerator, not a requirement: when the compiler, the headers
// or node-gyp are missing, this prints one warning and exits 0 so the install
// succeeds and framehub runs on the pure-JS VAD.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const nativeDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'native');

if (process.env.FRAMEHUB_SKIP_NATIVE === '1') {
  console.log('framehub: FRAMEHUB_SKIP_NATIVE=1, not building the VAD addon (the JS VAD will be used)');
  process.exit(0);
}
if (!existsSync(join(nativeDir, 'binding.gyp'))) process.exit(0);

// npm exposes its bundled node-gyp as npm_config_node_gyp; fall back to PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const result = spawnSync(cmd, args, { cwd: nativeDir, stdio: 'inherit' });
if (result.status !== 0) {
  console.warn(
    `framehub: building the native VAD addon failed (${result.error?.message ?? `exit ${result.status}`}); ` +
      'the pure-JS VAD will be used. Install python3, make and g++ and run `npm run build:native` to retry.',
  );
}
process.exit(0);
