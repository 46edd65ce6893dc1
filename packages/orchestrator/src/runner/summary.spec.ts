import { describe, expect, it } from 'vitest';
import type { ModuleRunResult, RunResult } from './run-result.js';
import { formatSummary } from './summary.js';

const attempt = (outcome: 'Succeeded' | 'Failed' | 'Cancelled' | 'Rejected' | 'Lost') => ({
  executionId: `run.m.${outcome}`,
  workerId: 'w1',
  startTime: '2025-01-01T00:00:00.000Z',
  endTime: '2025-01-01T00:00:01.000Z',
  outcome,
});

const resultOf = (modules: ModuleRunResult[]): RunResult => ({
  runId: 'run-1',
  pipeline: 'ci',
  success: false,
  status: 'Cancelled',
  startTime: '2025-01-01T00:00:00.000Z',
  endTime: '2025-01-01T00:00:02.000Z',
  durationMs: 2_000,
  modules,
});

describe('formatSummary', () => {
  it('lists failures, then modules stopped after they started, then modules not run', () => {
    const summary = formatSummary(
      resultOf([
        { name: 'build', status: 'Successful', workerId: 'w1', attempts: [attempt('Succeeded')], durationMs: 1_000 },
        {
          name: 'test',
          status: 'Failed',
          workerId: 'w1',
          attempts: [attempt('Failed')],
          error: { message: 'boom', type: 'Error' },
        },
        {
          name: 'long',
          status: 'PipelineTerminated',
          workerId: 'w1',
          attempts: [attempt('Cancelled')],
          reason: 'cancelled while running: the run was cancelled',
        },
        { name: 'publish', status: 'PipelineTerminated', attempts: [], reason: 'not run: the run was cancelled' },
        { name: 'docs', status: 'Skipped', attempts: [], reason: 'docs are off' },
      ]),
    );
    expect(summary.slice(summary.indexOf('\nFailures:'))).toBe(
      [
        '',
        'Failures:',
        '  test (Failed): boom',
        '',
        'Stopped after starting:',
        '  long (PipelineTerminated): cancelled while running: the run was cancelled',
        '',
        'Not run:',
        '  publish (PipelineTerminated): not run: the run was cancelled',
        '  docs (Skipped): docs are off',
      ].join('\n'),
    );
  });

  it('leaves out the lists that are empty', () => {
    const summary = formatSummary(
      resultOf([{ name: 'build', status: 'Successful', workerId: 'w1', attempts: [attempt('Succeeded')] }]),
    );
    expect(summary).not.toMatch(/Failures:|Stopped after starting:|Not run:/);
    expect(summary).toMatch(/^Pipeline 'ci' Cancelled in 2\.00s .*, run run-1\n/);
    expect(summary).toMatch(/\nbuild +Successful +w1 +1 +- +- +-\n/);
  });

  it('counts the attempts its worker refused before they ran (Rejected) apart: they use up no retry; a lost attempt counts', () => {
    const summary = formatSummary(
      resultOf([
        {
          name: 'seed',
          status: 'Successful',
          workerId: 'w1',
          attempts: [...Array.from({ length: 6 }, () => attempt('Rejected')), attempt('Succeeded')],
        },
        { name: 'audit', status: 'Successful', workerId: 'w1', attempts: [attempt('Lost'), attempt('Succeeded')] },
        { name: 'wait', status: 'PipelineTerminated', attempts: [attempt('Rejected')] },
      ]),
    );
    expect(summary).toMatch(/\nseed +Successful +w1 +1 \(6 refused\) +- +- +-\n/);
    expect(summary).toMatch(/\naudit +Successful +w1 +2 +- +- +-\n/);
    expect(summary).toMatch(/\nwait +PipelineTerminated +- +0 \(1 refused\) +- +- +-\n/);
  });
});
