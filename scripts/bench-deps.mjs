// `npm test` runs the bench smoke suite, which needs the harness's own dependencies
// (bench/package.json: autocannon, vega). They stay out of the daemon's tree, so this installs
// them with `npm --prefix bench ci` when bench/node_modules is missing or differs from the
// lockfile, and does nothing (no network, no time) when it already matches.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const bench = join(dirname(fileURLToPath(import.meta.url)), '..', 'bench');
const read = (path) => (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : undefined);
const wanted = read(join(bench, 'package-lock.json'))?.packages ?? {};
const installed = read(join(bench, 'node_modules', '.package-lock.json'))?.packages;

const stale =
  !installed ||
  Object.entries(wanted).some(
    // Optional packages (another platform's binaries) may rightly be absent.
    ([path, pkg]) => path !== '' && !pkg.optional && installed[path]?.version !== pkg.version,
  );
if (stale) {
  console.log('framehub: installing the bench harness dependencies (npm --prefix bench ci)');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['--prefix', bench, 'ci', '--no-audit', '--no-fund'], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
