// Removes optional-dependency edges that point at packages absent from package-lock.json.
//
// Why: the registry this project installs from does not carry every platform build (for
// example @biomejs/cli-win32-x64 answers 404). `npm install` skips such optional packages
// silently but still records the edge, and `npm ci` then refuses the lockfile as out of sync.
// Run after any `npm install` that changes the lockfile: `npm run lock:prune` (root and bench).
import { readFileSync, writeFileSync } from 'node:fs';

for (const file of process.argv.slice(2)) {
  const lock = JSON.parse(readFileSync(file, 'utf8'));
  const present = new Set(Object.keys(lock.packages).map((k) => k.replace(/^.*node_modules\//, '')));
  const removed = [];
  for (const [path, pkg] of Object.entries(lock.packages)) {
    for (const dep of Object.keys(pkg.optionalDependencies ?? {})) {
      if (present.has(dep)) continue;
      delete pkg.optionalDependencies[dep];
      removed.push(`${path || '(root)'} -> ${dep}`);
    }
  }
  writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
  console.log(
    `${file}: pruned ${removed.length} edge(s)${removed.length ? `\n  ${removed.join('\n  ')}` : ''}`,
  );
}
