// docker-compose.yml without a Docker engine: Debian's docker-compose (1.29, the Python one) loads
// it, interpolates it and validates it against the compose-spec JSON schema it bundles (`config`
// needs no daemon). Then the resolved file is cross-checked against what it mounts: the scrape
// target, the rule file, the Grafana data source URL and the dashboard provider path must all
// point at things that exist, on the ports the services listen on.
// Needs `docker-compose` (which brings python3-yaml, used here to read YAML) and `promtool`;
// CI installs both from .ci/apt-packages.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';
import { root } from './helpers.js';

const SECRET = 'compose-test-secret-compose-test-secret';

function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; input?: string } = {}) {
  const res = spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout: 30_000, ...opts });
  if ((res.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') {
    throw new Error(`${cmd} is not installed: apt-get install docker-compose prometheus (.ci/apt-packages)`);
  }
  if (res.error) throw res.error;
  return { code: res.status, out: res.stdout, err: res.stderr };
}

/** YAML to plain data through python3-yaml (a dependency of Debian's docker-compose). */
function yaml(text: string): unknown {
  const py = 'import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)';
  const res = run('python3', ['-c', py], { input: text });
  if (res.code !== 0) throw new Error(`YAML parse failed: ${res.err}`);
  return JSON.parse(res.out);
}

const readYaml = (rel: string) => yaml(readFileSync(join(root, rel), 'utf8')) as Record<string, unknown>;

function composeConfig(env: NodeJS.ProcessEnv) {
  return run('docker-compose', ['-f', 'docker-compose.yml', 'config'], { env });
}

const baseEnv = () => {
  const env = { ...process.env };
  delete env.FRAMEHUB_AUTH_HS256_SECRET;
  delete env.GRAFANA_ADMIN_PASSWORD;
  return env;
};

interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: unknown;
  environment?: Record<string, string>;
  ports?: (string | { target: number; published?: number | string })[];
  volumes?: string[];
  depends_on?: Record<string, unknown>;
}

/** `src:dst[:mode]` from the resolved config (absolute host paths for binds, names for volumes). */
function mounts(service: Service) {
  return (service.volumes ?? []).map((v) => {
    const [src = '', dst = ''] = v.split(':');
    return { src, dst, bind: src.startsWith('/') };
  });
}

function hostPathMountedAt(service: Service, containerPath: string): string | undefined {
  return mounts(service).find((m) => m.bind && m.dst === containerPath)?.src;
}

/** Container ports the service publishes (short `ip:host:container/proto` or long syntax). */
function containerPorts(service: Service): number[] {
  return (service.ports ?? []).map((p) =>
    typeof p === 'string'
      ? Number(
          p
            .replace(/\/\w+$/, '')
            .split(':')
            .at(-1),
        )
      : Number(p.target),
  );
}

/** The port the image listens on: FRAMEHUB_PORT in the Dockerfile's runtime ENV. */
function imagePort(): number {
  const m = /FRAMEHUB_PORT=(\d+)/.exec(readFileSync(join(root, 'Dockerfile'), 'utf8'));
  if (!m) throw new Error('Dockerfile sets no FRAMEHUB_PORT');
  return Number(m[1]);
}

describe('docker-compose.yml (no Docker engine: docker-compose config + cross-checks)', () => {
  const resolved = composeConfig({ ...baseEnv(), FRAMEHUB_AUTH_HS256_SECRET: SECRET });
  const config = () => {
    expect(resolved.code, resolved.err).toBe(0);
    return yaml(resolved.out) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
  };

  it('passes `docker-compose config` (compose-spec schema) when the secret is set', () => {
    expect(resolved.code, resolved.err).toBe(0);
    const quiet = run('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], {
      env: { ...baseEnv(), FRAMEHUB_AUTH_HS256_SECRET: SECRET },
    });
    expect(quiet.code, quiet.err).toBe(0);
  });

  it('refuses to start without FRAMEHUB_AUTH_HS256_SECRET, naming it', () => {
    const res = composeConfig(baseEnv());
    expect(res.code).not.toBe(0);
    expect(res.err).toContain('set FRAMEHUB_AUTH_HS256_SECRET');
  });

  it('runs framehub from this Dockerfile, Prometheus, Grafana and Redis from pinned images', () => {
    const { services } = config();
    expect(Object.keys(services).sort()).toEqual(['framehub', 'grafana', 'prometheus', 'redis']);
    const framehub = services.framehub!;
    expect(framehub.build?.context).toBe(root);
    expect(existsSync(join(root, framehub.build?.dockerfile ?? 'Dockerfile'))).toBe(true);
    expect(framehub.environment?.FRAMEHUB_AUTH_HS256_SECRET).toBe(SECRET);
    expect(containerPorts(framehub)).toContain(imagePort());
    expect(services.prometheus!.image).toMatch(/^prom\/prometheus:v\d+\.\d+\.\d+$/);
    expect(services.grafana!.image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
    // framehub's cluster bus is the redis service, on Redis's own port.
    expect(services.redis!.image).toMatch(/^redis:7\.\d+\.\d+$/);
    expect(framehub.environment?.FRAMEHUB_REDIS_URL).toBe('redis://redis:6379');
  });

  it('mounts only files and folders that exist, and declares its named volumes', () => {
    const { services, volumes } = config();
    for (const [name, service] of Object.entries(services)) {
      for (const m of mounts(service)) {
        if (m.bind) expect(existsSync(m.src), `${name}: ${m.src} (mounted at ${m.dst})`).toBe(true);
        else expect(Object.keys(volumes ?? {}), `${name}: volume ${m.src}`).toContain(m.src);
      }
    }
  });

  it('has Prometheus scrape the framehub service on the image port and load the mounted alert rules', () => {
    const { services } = config();
    const prometheus = services.prometheus!;
    // The official image's default command reads /etc/prometheus/prometheus.yml.
    expect(prometheus.command).toBeUndefined();
    const configPath = '/etc/prometheus/prometheus.yml';
    const host = hostPathMountedAt(prometheus, configPath);
    expect(host, `nothing mounted at ${configPath}`).toBe(join(root, 'grafana/prometheus.compose.yml'));
    const prom = readYaml('grafana/prometheus.compose.yml') as {
      rule_files?: string[];
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    const framehubJob = prom.scrape_configs.find((s) => s.job_name === 'framehub');
    expect(framehubJob, 'job_name framehub (the dashboard and alerts filter on it)').toBeDefined();
    expect(framehubJob!.static_configs.flatMap((c) => c.targets)).toEqual([`framehub:${imagePort()}`]);
    // Each rule file, resolved as Prometheus does (relative to the config file), is mounted.
    expect(prom.rule_files?.length ?? 0).toBeGreaterThan(0);
    for (const rule of prom.rule_files ?? []) {
      const inContainer = posix.resolve(posix.dirname(configPath), rule);
      const src = hostPathMountedAt(prometheus, inContainer);
      expect(src, `rule file ${inContainer} is not mounted`).toBeDefined();
      expect(src).toBe(join(root, 'grafana', rule));
    }
    // promtool reads the rule files too, relative to the config file, as the container does.
    const check = run('promtool', ['check', 'config', 'grafana/prometheus.compose.yml']);
    expect(check.code, `${check.out}${check.err}`).toBe(0);
  });

  it('provisions a Grafana data source that reaches the prometheus service, and the dashboard', () => {
    const { services } = config();
    const grafana = services.grafana!;
    const dsDir = hostPathMountedAt(grafana, '/etc/grafana/provisioning/datasources');
    expect(dsDir).toBe(join(root, 'grafana/provisioning-compose/datasources'));
    const ds = readYaml('grafana/provisioning-compose/datasources/prometheus.yml') as {
      datasources: { name: string; uid: string; type: string; url: string }[];
    };
    const shared = readYaml('grafana/provisioning/datasources/prometheus.yml') as typeof ds;
    expect(ds.datasources).toHaveLength(1);
    const url = new URL(ds.datasources[0]!.url);
    expect(url.hostname).toBe('prometheus');
    expect(containerPorts(services.prometheus!)).toContain(Number(url.port));
    // Same name and uid as outside compose, so the dashboard resolves it the same way.
    expect(ds.datasources[0]!.uid).toBe(shared.datasources[0]!.uid);
    expect(ds.datasources[0]!.name).toBe(shared.datasources[0]!.name);

    const providerDir = hostPathMountedAt(grafana, '/etc/grafana/provisioning/dashboards');
    expect(providerDir).toBe(join(root, 'grafana/provisioning/dashboards'));
    const provider = readYaml('grafana/provisioning/dashboards/framehub.yml') as {
      providers: { options: { path: string } }[];
    };
    const dashboardsAt = provider.providers[0]!.options.path;
    const dashboards = hostPathMountedAt(grafana, dashboardsAt);
    expect(dashboards, `nothing mounted at the provider path ${dashboardsAt}`).toBe(
      join(root, 'grafana/dashboards'),
    );
    expect(statSync(join(dashboards!, 'framehub.json')).isFile()).toBe(true);
    expect(Object.keys(grafana.depends_on ?? {})).toContain('prometheus');
  });
});
