/**
 * Issue 12's "a user's repository, tested": every publishable package packed (scripts/pack-all.mjs),
 * installed with plain npm into a new project outside the workspace, a TypeScript pipeline written
 * there, and run with `npx mpd …` on one orchestrator and two workers. One npm install serves
 * every case. Signals go to the PID a user (or a service manager) has: `npx`'s, and a plain
 * `node_modules/.bin/mpd`'s; the registry (through the orchestrator's API, with the installed
 * `@mpd/client`) and /proc say whether they stopped and left nothing behind.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { killProjectProcesses, startInProject, userEnv } from './helpers/project-processes.js';
import { watchProcessTree } from '@mpd/test-kit';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const workspaceRequire = createRequire(join(root, 'package.json'));

const PUBLISHED = [
  '@mpd/cli',
  '@mpd/client',
  '@mpd/contract',
  '@mpd/orchestrator',
  '@mpd/pipeline',
  '@mpd/server-kit',
  '@mpd/worker',
];
const tokens = {
  MPD_JOIN_TOKEN: `mpdj_${randomBytes(24).toString('base64url')}`,
  MPD_ADMIN_TOKEN: `mpda_${randomBytes(24).toString('base64url')}`,
};

let base: string;
/** The user's project: `npm init -y` (CommonJS, npm's default), then the tarballs installed. */
let project: string;
let tarballs: Record<string, string>;

/** Runs a short command in the project; resolves with its output, rejects with it on failure. */
const inProject = (command: string, args: string[], env: Record<string, string> = {}) =>
  run(command, args, { cwd: project, env: userEnv(env), maxBuffer: 16 * 1024 * 1024 });

beforeAll(async () => {
  base = mkdtempSync(join(tmpdir(), 'mpd-install-'));
  project = join(base, 'project');
  mkdirSync(project);
  // Packed into the project's vendor/mpd/ and installed from there, as the README says (so that
  // package.json and the lockfile record paths inside the project).
  const packed = await run(
    process.execPath,
    // --no-check: the sources' types are pnpm test's typecheck's (scripts/typecheck-all.mjs); the
    // build is still from scratch, and a declaration-emit error still fails it.
    [join(root, 'scripts/pack-all.mjs'), join(project, 'vendor', 'mpd'), '--json', '--no-check'],
    { cwd: root, maxBuffer: 16 * 1024 * 1024 },
  );
  tarballs = JSON.parse(packed.stdout) as Record<string, string>;
  await inProject('npm', ['init', '-y']);
  await inProject('npm', [
    'install',
    '--no-audit',
    '--no-fund',
    '--prefer-offline',
    ...Object.values(tarballs).map((tarball) => relative(project, tarball)),
  ]);
  const fill = (name: string, values: Record<string, string>) => {
    let text = readFileSync(join(fixtures, name), 'utf8');
    for (const [key, value] of Object.entries(values)) text = text.replaceAll(key, value);
    writeFileSync(join(project, name), text);
  };
  fill('pipeline.ts', { __GATE_DIR__: project });
  fill('consumer.ts', {});
  fill('list-workers.mjs', {});
  fill('list-workers.cjs', {});
  fill('tsconfig.json', { __TYPE_ROOTS__: join(root, 'node_modules/@types') });
});

afterAll(() => {
  killProjectProcesses();
  if (base) rmSync(base, { recursive: true, force: true });
});

describe('the packed packages, installed with npm outside the workspace', () => {
  it('are the seven publishable packages, with dist/ exports, versions for workspace ranges, and no tests', async () => {
    expect(Object.keys(tarballs).sort()).toEqual(PUBLISHED);
    // What npm recorded: paths inside the project, so that `npm ci` works wherever it is checked out.
    const { dependencies } = JSON.parse(readFileSync(join(project, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect(Object.keys(dependencies).sort()).toEqual(PUBLISHED);
    for (const spec of Object.values(dependencies)) expect(spec).toMatch(/^file:vendor\/mpd\/mpd-[a-z-]+-[\d.]+\.tgz$/);
    for (const name of PUBLISHED) {
      const manifest = JSON.parse(readFileSync(join(project, 'node_modules', name, 'package.json'), 'utf8')) as {
        exports?: Record<string, { types: string; default: string } | string>;
        bin?: Record<string, string>;
        dependencies?: Record<string, string>;
        engines?: { node?: string };
        license?: string;
        files?: string[];
      };
      for (const [path, target] of Object.entries(manifest.exports ?? {})) {
        if (path === './package.json') continue;
        expect(target, `${name} exports ${path}`).toEqual({
          types: expect.stringMatching(/^\.\/dist\/.*\.d\.ts$/),
          default: expect.stringMatching(/^\.\/dist\/.*\.js$/),
        });
      }
      for (const target of Object.values(manifest.bin ?? {})) expect(target).toMatch(/^\.\/dist\/.*\.js$/);
      for (const range of Object.values(manifest.dependencies ?? {})) expect(range).not.toMatch(/^workspace:/);
      expect(manifest.engines?.node, name).toBe(
        JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).engines.node,
      );
      expect(manifest.license, name).toBe('MIT');
      expect(manifest, `${name} ships no devDependencies`).not.toHaveProperty('devDependencies');
      expect(manifest, `${name} ships no publishConfig`).not.toHaveProperty('publishConfig');
      expect(readFileSync(join(project, 'node_modules', name, 'LICENSE'), 'utf8'), name).toMatch(/^MIT License/);
    }
    // Packed again from the same commit: the same bytes (a lockfile's integrity checks them).
    const again = JSON.parse(
      (
        await run(process.execPath, [join(root, 'scripts/pack-all.mjs'), join(base, 'again'), '--json', '--no-build'], {
          cwd: root,
          maxBuffer: 16 * 1024 * 1024,
        })
      ).stdout,
    ) as Record<string, string>;
    for (const name of PUBLISHED) {
      expect(readFileSync(again[name]!).equals(readFileSync(tarballs[name]!)), `${name} packed twice`).toBe(true);
    }
    const shipped = await run('tar', ['-tzf', tarballs['@mpd/worker']!]);
    expect(shipped.stdout).toContain('package/dist/executor/module-host-main.js');
    expect(shipped.stdout).toContain('package/src/executor/module-host-main.ts');
    expect(shipped.stdout).not.toMatch(/\.spec\.(ts|js)$/m);
    // Every shipped source map points at the shipped source it was made from (pack-all builds
    // all packages in one program and writes each map where `tsc -p` in the package would).
    for (const name of PUBLISHED) {
      const installed = join(project, 'node_modules', name);
      const maps = readdirSync(join(installed, 'dist'), { recursive: true, encoding: 'utf8' }).filter((file) =>
        file.endsWith('.js.map'),
      );
      expect(maps.length, `${name} ships source maps`).toBeGreaterThan(0);
      for (const map of maps) {
        const { sources } = JSON.parse(readFileSync(join(installed, 'dist', map), 'utf8')) as { sources: string[] };
        // dist/a/b.js.map was made from src/a/b.ts: `../../src/a/b.ts` from dist/a/.
        const source = relative(join('dist', dirname(map)), join('src', map.replace(/\.js\.map$/, '.ts')));
        expect(sources, `${name} dist/${map}`).toEqual([source.split(sep).join('/')]);
        expect(existsSync(join(installed, 'src', map.replace(/\.js\.map$/, '.ts'))), `${name} src of ${map}`).toBe(
          true,
        );
      }
    }
  });

  it('mpd --version, mpd help and the mpd-worker alias answer, through npx and node_modules/.bin', async () => {
    const { version } = JSON.parse(readFileSync(join(root, 'packages/cli/package.json'), 'utf8')) as {
      version: string;
    };
    expect((await inProject('npx', ['mpd', '--version'])).stdout).toBe(`${version}\n`);
    expect((await inProject('node_modules/.bin/mpd', ['help'])).stdout).toMatch(/^Usage: mpd <command>/);
    expect((await inProject('node_modules/.bin/mpd-worker', ['--help'])).stdout).toMatch(
      /^Usage: mpd worker \[options\]/,
    );
  });

  it('tsc --noEmit typechecks a consumer and the pipeline against the shipped types (skipLibCheck off)', async () => {
    const tsc = workspaceRequire.resolve('typescript/bin/tsc');
    await expect(inProject(process.execPath, [tsc, '-p', 'tsconfig.json'])).resolves.toMatchObject({ stdout: '' });
  });

  it(
    'runs a TypeScript pipeline on an orchestrator and two `npx mpd worker`s; SIGTERM to the PID of `npx mpd worker` ' +
      '(running a module) and of `node_modules/.bin/mpd worker` (idle) drains, leaves the registry and leaves no process; ' +
      'SIGTERM to the process group of `npx mpd worker` drains once',
    async () => {
      const orchestrator = startInProject(
        project,
        'npx',
        ['mpd', 'orchestrator', '--pipeline', 'pipeline.ts', '--host', '127.0.0.1', '--port', '0'].concat([
          '--min-workers',
          '2',
          '--report',
          'report.json',
        ]),
        tokens,
      );
      const url = (await orchestrator.waitFor(/listening on (http:\S+)/))[1]!;
      const workerArgs = (id: string, ...more: string[]) =>
        ['worker', '--id', id, '--orchestrator', url, '--pipeline', 'pipeline.ts', '--host', '127.0.0.1'].concat([
          '--port',
          '0',
          '--slots',
          '1',
          ...more,
        ]);
      // Tokens through the environment only: a command line shows in `ps` and in logs.
      const workerA = startInProject(project, 'npx', ['mpd', ...workerArgs('install-a', '--tags', 'a')], tokens);
      const workerB = startInProject(project, 'npx', ['mpd', ...workerArgs('install-b', '--tags', 'b')], tokens);
      // left and right are ready together and each worker has one slot: they run on both.
      await orchestrator.waitFor(/▶ gate-a on install-a/);
      await orchestrator.waitFor(/▶ gate-b on install-b/);

      /** The workers the orchestrator lists (id → status), by a user's ESM or CommonJS script using @mpd/client. */
      const listed = async (script: 'list-workers.mjs' | 'list-workers.cjs') => {
        const { stdout } = await inProject(process.execPath, [script], { MPD_URL: url, ...tokens });
        return Object.fromEntries(
          (JSON.parse(stdout) as { id: string; status: string }[]).map((w) => [w.id, w.status]),
        );
      };
      /**
       * The same list from the orchestrator's API (`GET /api/workers`, the admin token) in this
       * process: what the polls ask, where each answer of a script costs a node start (about
       * 0.4 CPU-s). The scripts read the first list and each worker's Draining once more.
       */
      const registry = async () => {
        const answer = await fetch(`${url}/api/workers`, {
          headers: { authorization: `Bearer ${tokens.MPD_ADMIN_TOKEN}` },
        });
        expect(answer.status, 'GET /api/workers').toBe(200);
        return Object.fromEntries(
          ((await answer.json()) as { id: string; status: string }[]).map((w) => [w.id, w.status]),
        );
      };
      const ids = async () => Object.keys(await registry()).sort();
      expect(Object.keys(await listed('list-workers.mjs')).sort()).toEqual(['install-a', 'install-b']);
      expect(Object.keys(await listed('list-workers.cjs')).sort()).toEqual(['install-a', 'install-b']);

      const plainWorker = startInProject(project, 'node_modules/.bin/mpd', workerArgs('install-plain'), tokens);
      await plainWorker.waitFor(/listening on/);
      await expect.poll(ids, { timeout: 10_000 }).toContain('install-plain');

      // Each tree as it is now: npm, its shell, node, the module hosts (running gate-a, gate-b), esbuild's service.
      const treeA = watchProcessTree(workerA.pid);
      const treeB = watchProcessTree(workerB.pid);
      const treePlain = watchProcessTree(plainWorker.pid);
      expect(treeB.seen().map((entry) => entry.commandLine)).toContainEqual(
        expect.stringMatching(/node_modules\/\.bin\/mpd worker/),
      );
      expect(treeB.seen().map((entry) => entry.commandLine)).toContainEqual(
        expect.stringMatching(/module-host-main\.js/),
      );

      // The idle worker started as node_modules/.bin/mpd: SIGTERM to its PID, it unregisters and exits 0.
      plainWorker.child.kill('SIGTERM');
      expect(await plainWorker.exited).toEqual({ code: 0, signal: null });
      await expect.poll(ids, { timeout: 15_000, interval: 250 }).toEqual(['install-a', 'install-b']);
      await expect.poll(() => treePlain.leftovers(), { timeout: 15_000, interval: 250 }).toEqual([]);

      // `npx mpd worker` running gate-b: SIGTERM to npx's PID drains it (the module goes on) …
      workerB.child.kill('SIGTERM');
      await expect
        .poll(async () => (await registry())['install-b'], { timeout: 15_000, interval: 250 })
        .toBe('Draining');
      expect((await listed('list-workers.cjs'))['install-b']).toBe('Draining');
      // … and once gate-b finishes, the worker leaves the registry and nothing of its tree is left.
      writeFileSync(join(project, 'gate-b'), '');
      await expect.poll(ids, { timeout: 15_000, interval: 250 }).toEqual(['install-a']);
      await expect.poll(() => treeB.leftovers(), { timeout: 15_000, interval: 250 }).toEqual([]);

      // `npx mpd worker` running gate-a, SIGTERM to its whole process group (as systemd stops a unit,
      // KillMode=control-group): one drain, not a drain and then a cancel (npm's shell dies of the
      // same signal, and mpd notices its parent is gone).
      process.kill(-workerA.pid, 'SIGTERM');
      await expect
        .poll(async () => (await registry())['install-a'], { timeout: 15_000, interval: 250 })
        .toBe('Draining');
      expect((await listed('list-workers.mjs'))['install-a']).toBe('Draining');
      // Longer than the worker's wait for its parent to go (twice 250 ms): a cancel would come now.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      writeFileSync(join(project, 'gate-a'), '');
      expect(await orchestrator.exited).toEqual({ code: 0, signal: null });
      await expect.poll(() => treeA.leftovers(), { timeout: 15_000, interval: 250 }).toEqual([]);

      const report = JSON.parse(readFileSync(join(project, 'report.json'), 'utf8')) as {
        success: boolean;
        modules: { name: string; status: string; workerId: string; attempts: unknown[] }[];
      };
      expect(report.success).toBe(true);
      const where = Object.fromEntries(report.modules.map((m) => [m.name, [m.status, m.workerId, m.attempts.length]]));
      expect(where['gate-a']).toEqual(['Successful', 'install-a', 1]);
      expect(where['gate-b']).toEqual(['Successful', 'install-b', 1]);
      expect(new Set([where.left![1], where.right![1]])).toEqual(new Set(['install-a', 'install-b']));
      for (const module of report.modules) expect(module.attempts).toHaveLength(1);
    },
    // 300 s rather than the file's 120: about a dozen process starts, most in turn (npx's own
    // npm start before each mpd; the user's scripts listing the workers, four times: the polls
    // ask the API in this process), and two drains; beside another suite (load 30) it ran past
    // 120 s in main and in this branch alike.
    300_000,
  );
});
