/**
 * End to end: `pnpm demo`'s script as a real process — one orchestrator and two worker
 * processes — checked through the JSON run report and the printed summary.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunResult } from '@mpd/orchestrator';
import { spawnProcess } from '@mpd/test-kit';
import { beforeAll, describe, expect, it } from 'vitest';

const demoDir = fileURLToPath(new URL('..', import.meta.url));
const reportFile = join(mkdtempSync(join(tmpdir(), 'mpd-demo-e2e-')), 'report.json');
let exitCode: number | null;
let output = '';
let report: RunResult;

beforeAll(async () => {
  const demo = spawnProcess({
    script: 'src/run-demo.ts',
    args: ['--report', reportFile],
    cwd: demoDir,
    env: { BUILD_NUMBER: '1234' },
  });
  exitCode = await demo.exited;
  output = demo.output();
  report = JSON.parse(readFileSync(reportFile, 'utf8')) as RunResult;
  // 180 s: the demo starts its four processes one after another (its story: a worker, the status
  // service, then the second worker), each worker its two module hosts, and runs eight modules
  // (one of them `node --test`): process starts, seconds each on a loaded machine; beside another
  // suite (load 30) it ran past 60 s in main and in this branch alike.
}, 180_000);

const module = (name: string) => report.modules.find((candidate) => candidate.name === name)!;

describe('the demo', () => {
  it('exits 0 after a successful run', () => {
    expect(exitCode, output).toBe(0);
    expect(report).toMatchObject({ pipeline: 'demo', success: true, status: 'Successful' });
  });

  it('ran every module of the diamond once (audit twice: its first attempt flakes), in dependency order', () => {
    expect(report.modules.map((m) => [m.name, m.status, m.attempts.length])).toEqual([
      ['restore', 'Successful', 1],
      ['build', 'Successful', 1],
      ['test-unit', 'Successful', 1],
      ['test-integration', 'Successful', 1],
      ['lint', 'Successful', 1],
      ['audit', 'Successful', 2],
      ['package', 'Successful', 1],
      ['cleanup', 'Successful', 1],
    ]);
    expect(module('audit').attempts.map((attempt) => attempt.outcome)).toEqual(['Failed', 'Succeeded']);
    expect(module('audit').attempts[0]!.error).toMatch(/simulated flake/);
    const starts = Object.fromEntries(report.modules.map((m) => [m.name, Date.parse(m.startTime!)]));
    const ends = Object.fromEntries(report.modules.map((m) => [m.name, Date.parse(m.endTime!)]));
    expect(starts.build).toBeGreaterThanOrEqual(ends.restore!);
    for (const test of ['test-unit', 'test-integration', 'lint'])
      expect(starts[test]).toBeGreaterThanOrEqual(ends.build!);
    for (const before of ['test-unit', 'test-integration', 'lint', 'audit'])
      expect(starts.package).toBeGreaterThanOrEqual(ends[before]!);
    expect(starts.cleanup).toBeGreaterThanOrEqual(ends.package!);
  });

  it('routed the modules that need the fast-disk tag to the one worker that has it', () => {
    expect(module('package').workerId).toBe('demo-worker-1');
    expect(module('cleanup').workerId).toBe('demo-worker-1');
    expect(module('cleanup').result).toMatchObject({ packaged: true });
  });

  it('ran secured: fresh tokens printed once, and never again in the output', () => {
    const match = /tokens for this run \(printed once\): join (\S+), admin (\S+)/.exec(output);
    expect(match).not.toBeNull();
    for (const token of [match![1]!, match![2]!]) expect(output.split(token)).toHaveLength(2);
  });

  it('used both worker processes', () => {
    expect(new Set(report.modules.map((m) => m.workerId))).toEqual(new Set(['demo-worker-1', 'demo-worker-2']));
  });

  it('passed dependency results along: package saw what build, the tests and lint produced', () => {
    const build = module('build').result as { bundleHash: string; checkedFiles: number };
    const unit = module('test-unit').result as { passed: number; failed: number };
    const integration = module('test-integration').result as { checks: number; summary: { slug: string } };
    const packaged = module('package').result as Record<string, unknown>;
    expect(build.checkedFiles).toBe(4); // three sources and the unit test file
    expect(unit).toMatchObject({ passed: 3, failed: 0 });
    expect(integration).toMatchObject({ checks: 3, summary: { slug: 'hello-distributed-world' } });
    expect(packaged).toMatchObject({
      bundleHash: build.bundleHash,
      buildNumber: '1234', // from the orchestrator's --env, through ctx.env
      unitPassed: 3,
      integrationChecks: 3,
      lintWarnings: (module('lint').result as { warnings: unknown[] }).warnings.length,
    });
    expect(packaged.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it("moved build's bundle as an artifact: a reference in build's result, not the files; each consumer checked the files it got", () => {
    const build = module('build').result as {
      files: string[];
      bundleHash: string;
      artifacts: { bundle: { name: string; sha256: string; size: number; files: number; compression: string } };
    };
    expect(build).not.toHaveProperty('bundle');
    expect(build.artifacts.bundle).toEqual({
      name: 'bundle',
      sha256: expect.stringMatching(/^[0-9a-f]{64}$/),
      size: expect.any(Number),
      files: build.files.length,
      compression: 'none', // the default: a plain tar
    });
    // Each consumer hashed the files it got against build's bundleHash (or failed); the tests say so.
    for (const name of ['test-unit', 'test-integration']) {
      expect((module(name).result as { bundleHash: string }).bundleHash).toBe(build.bundleHash);
    }
    expect(JSON.stringify(report).length).toBeLessThan(20_000);
  });

  it("showed the modules' own lines grouped: their logger and the tools they ran, under a header per module", () => {
    const group = (name: string): string => {
      const match = new RegExp(`^── ${name} on demo-worker-[12] ──\\n((?:(?!──|\\[mpd\\]).*\\n)*)`, 'm').exec(output);
      expect(match, output).not.toBeNull();
      return match![1]!;
    };
    expect(group('build')).toContain('bundled {"files":4');
    expect(group('test-unit')).toMatch(/^# pass 3$/m);
    expect(group('test-integration')).toContain('summary checked {"slug":"hello-distributed-world"');
    expect(group('package')).toContain('artifact written');
  });

  it('printed where each module ran, the summary table, and what the client saw', () => {
    expect(output).toMatch(/\[mpd\] ▶ restore on demo-worker-[12]/);
    expect(output).toMatch(/Module\s+Status\s+Worker\s+Attempts\s+Duration/);
    expect(output).toMatch(/package\s+Successful\s+demo-worker-[12]\s+1/);
    expect(output).toMatch(/\[status\] orchestrator http:\/\/127\.0\.0\.1:\d+ is healthy: 1 available worker\(s\)/);
    expect(output).toMatch(
      /\[status\] {3}demo-worker-1 {2}Available {2}load 0\/2 {2}linux {2}tags \[linux, fast-disk\] {2}pipeline demo/,
    );
    expect(output).toContain('[demo] orchestrator exited with code 0');
  });
});
