/**
 * The deployment files as their engines read them, where no engine runs (issue 12,
 * "Deployment files"): the Dockerfile's runtime stage and build steps, compose.yaml's tokens,
 * and the systemd unit (with `systemd-analyze verify` where the machine has it). What the
 * containers do is compose-netns.spec.ts's part.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { environmentOf, interpolate, readCompose, readImage, REPO_ROOT } from './deploy-files.js';

describe('compose.yaml', () => {
  it('takes every token from the environment, and refuses to start without it', () => {
    const { services } = readCompose();
    for (const [name, service] of Object.entries(services)) {
      const tokens = Object.entries(
        environmentOf(service, new Proxy({}, { get: (_, key) => `<${String(key)}>` })),
      ).filter(([variable]) => /TOKEN/.test(variable));
      expect(tokens.length, `${name} has a token`).toBeGreaterThan(0);
      // Each is `${NAME:?…}` of its own name: no value is written in the file, and none defaults.
      for (const [variable, value] of tokens) expect(value, `${name}: ${variable}`).toBe(`<${variable}>`);
      expect(() => environmentOf(service, {}), name).toThrow(/required variable MPD_JOIN_TOKEN is missing a value/);
      expect(() => environmentOf(service, { MPD_JOIN_TOKEN: '' }), name).toThrow(/MPD_JOIN_TOKEN/);
    }
  });

  it('interpolates as compose does: ${NAME:-default}, ${NAME:?error}, $$', () => {
    const variables = { SET: 'value', EMPTY: '' };
    expect(interpolate('a=${SET} b=${EMPTY:-d} c=${UNSET-d} d=$$SET e=$SET', variables)).toBe(
      'a=value b=d c=d d=$SET e=value',
    );
    expect(interpolate('${EMPTY-d}', variables)).toBe('');
    expect(() => interpolate('${UNSET:?say why}', variables)).toThrow(
      'required variable UNSET is missing a value: say why',
    );
    expect(() => interpolate('${SET', variables)).toThrow(/unsupported interpolation/);
  });
});

describe('Dockerfile', () => {
  it('builds as the workspace does: a frozen install, pnpm build, then a production install', () => {
    const { instructions } = readImage();
    const runs = instructions.filter((line) => line.startsWith('RUN '));
    const index = (pattern: RegExp) => runs.findIndex((line) => pattern.test(line));
    expect(index(/pnpm install --frozen-lockfile --offline --store-dir/)).toBeGreaterThan(index(/pnpm fetch/));
    expect(index(/pnpm build/)).toBeGreaterThan(index(/pnpm install --frozen-lockfile --offline --store-dir/));
    expect(index(/pnpm install --frozen-lockfile --offline --prod/)).toBeGreaterThan(index(/pnpm build/));
    // The build context leaves out what the build makes again (a host's node_modules would
    // carry binaries built for another platform).
    const ignored = readFileSync(`${REPO_ROOT}.dockerignore`, 'utf8').split('\n');
    for (const entry of ['**/node_modules', '**/dist', '.git']) expect(ignored).toContain(entry);
  });

  it("runs mpd under tini as a non-root user in the repository's layout, with compose's healthcheck", () => {
    const image = readImage();
    expect(image.from).toMatch(/^node:\$\{NODE_VERSION\}-bookworm-slim$/);
    expect(image.entrypoint).toEqual(['tini', '--', 'mpd']);
    expect(image.instructions.some((line) => /apt-get install .*\btini\b/.test(line))).toBe(true);
    expect(image.user).toBeDefined();
    expect(image.user).not.toMatch(/^(root|0)(:|$)/);
    expect(image.workdir).toBe('/mpd');
    // Both commands listen on the port the healthcheck asks and compose's URLs name.
    expect(image.env.MPD_PORT).toBe('8080');
    const { services } = readCompose();
    for (const [name, service] of Object.entries(services)) {
      expect(service.healthcheck?.test, name).toEqual(['CMD', ...image.healthcheck!]);
      for (const url of Object.values(environmentOf(service, { MPD_JOIN_TOKEN: 't', MPD_ADMIN_TOKEN: 't' }))) {
        if (url.startsWith('http')) expect(new URL(url).port, `${name}: ${url}`).toBe(image.env.MPD_PORT);
      }
    }
  });
});

/** `KEY=value` lines of a unit file's `[Service]` section. */
function serviceSection(text: string): Map<string, string> {
  const section = text.split(/^\[Service\]$/m)[1]!.split(/^\[/m)[0]!;
  return new Map(
    section
      .split('\n')
      .filter((line) => /^\w+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
}

/** Seconds of a systemd time span such as `31min`, `90s`, `1h 5min`. */
function seconds(span: string): number {
  const units: Record<string, number> = { s: 1, sec: 1, min: 60, m: 60, h: 3600, hr: 3600 };
  return [...span.matchAll(/(\d+)\s*([a-z]*)/g)].reduce((sum, [, n, unit]) => sum + Number(n) * units[unit || 's']!, 0);
}

const SYSTEMD_UNIT = `${REPO_ROOT}deploy/systemd/mpd-worker.service`;
const systemdAnalyze = (() => {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

describe('deploy/systemd/mpd-worker.service', () => {
  it('drains on SIGTERM with time to finish, restarts on failure only, keeps its credential in its state directory', () => {
    const unit = serviceSection(readFileSync(SYSTEMD_UNIT, 'utf8'));
    expect(unit.get('ExecStart')).toMatch(/\/mpd worker .*--credential-file \/var\/lib\/mpd\//);
    expect(unit.get('StateDirectory')).toBe('mpd');
    expect(unit.get('EnvironmentFile')).toBeDefined();
    expect(unit.get('ExecStart')).not.toMatch(/TOKEN|--join-token|--token/);
    expect(unit.get('DynamicUser')).toBe('yes');
    expect(unit.get('Restart')).toBe('on-failure');
    expect(unit.get('RestartPreventExitStatus')?.split(' ')).toEqual(['2', '3']);
    expect(unit.get('KillSignal')).toBe('SIGTERM');
    // SIGTERM to the worker alone: its modules' processes are the worker's to stop.
    expect(unit.get('KillMode')).toBe('mixed');
    // Above the drain: the default module timeout (30 min) plus the default kill grace (10 s).
    expect(seconds(unit.get('TimeoutStopSec')!)).toBeGreaterThan(30 * 60 + 10);
  });

  it.skipIf(!systemdAnalyze)(
    `passes systemd-analyze verify${systemdAnalyze ? '' : ' (skipped: no systemd-analyze here)'}`,
    () => {
      // verify checks that ExecStart's program and the EnvironmentFile exist: stand-ins here.
      const dir = mkdtempSync(join(tmpdir(), 'mpd-unit-'));
      try {
        writeFileSync(join(dir, 'mpd'), '#!/bin/sh\n');
        chmodSync(join(dir, 'mpd'), 0o755);
        writeFileSync(join(dir, 'worker.env'), '');
        const unit = readFileSync(SYSTEMD_UNIT, 'utf8')
          .replace('/opt/ci/node_modules/.bin/mpd', join(dir, 'mpd'))
          .replace('/etc/mpd/worker.env', join(dir, 'worker.env'));
        writeFileSync(join(dir, 'mpd-worker.service'), unit);
        // It exits 0 on settings it ignores, and says so on stderr: no output is the pass.
        const verify = spawnSync('systemd-analyze', ['verify', join(dir, 'mpd-worker.service')], { encoding: 'utf8' });
        expect({ status: verify.status, output: `${verify.stdout}${verify.stderr}` }).toEqual({
          status: 0,
          output: '',
        });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
