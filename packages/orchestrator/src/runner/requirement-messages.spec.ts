import type { WorkerNode } from '@mpd/contract';
import { describe, expect, it } from 'vitest';
import { describeRequirements, missingCapabilities, noCapableWorkerReason } from './requirement-messages.js';

const worker = (id: string, capabilities: Partial<WorkerNode['capabilities']> = {}): WorkerNode =>
  ({
    id,
    endpoint: `http://${id}:9000`,
    capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [], ...capabilities },
  }) as WorkerNode;

describe('requirement messages', () => {
  it('missingCapabilities: what a worker lacks, empty when it can run the module', () => {
    const requires = { os: ['windows'], tools: ['docker', 'node'], tags: ['gpu'] };
    expect(missingCapabilities(worker('w', { installedTools: ['node'] }), requires)).toEqual([
      "os 'windows' (has 'linux')",
      "tool 'docker'",
      "tag 'gpu'",
    ]);
    expect(missingCapabilities(worker('w', { os: 'macos' }), { os: ['linux', 'windows'] })).toEqual([
      "os one of [linux, windows] (has 'macos')",
    ]);
    expect(
      missingCapabilities(worker('w', { installedTools: ['docker'], tags: ['gpu'] }), { tools: ['docker'] }),
    ).toEqual([]);
  });

  it('describeRequirements: every requirement, or nothing', () => {
    expect(describeRequirements({ os: ['linux', 'macos'], tools: ['docker'], tags: ['gpu'] })).toBe(
      "os one of [linux, macos], tool 'docker', tag 'gpu'",
    );
    expect(describeRequirements({})).toBe('nothing');
  });

  it('noCapableWorkerReason: no worker of the pipeline, or what each live one lacks', () => {
    const pipeline = { name: 'ci', fingerprint: 'sha256:abc' };
    expect(noCapableWorkerReason(pipeline, {}, [])).toBe(
      "no live worker with pipeline 'ci' (fingerprint sha256:abc) was registered",
    );
    expect(noCapableWorkerReason(pipeline, { tags: ['gpu'] }, [worker('w1'), worker('w2')])).toBe(
      "it needs tag 'gpu', and no live worker has it: w1 lacks tag 'gpu'; w2 lacks tag 'gpu'",
    );
  });
});
