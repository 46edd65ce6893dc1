import type { WorkerNode } from '@mpd/contract';
import { describe, expect, it } from 'vitest';
import {
  describeRequirements,
  missingCapabilities,
  noCapableWorkerReason,
  noLiveWorkerCanRun,
  unfitReason,
} from './requirement-messages.js';

const CI = { name: 'ci', fingerprint: 'sha256:abc' };

/** A live worker of pipeline `ci` unless `node` says otherwise. */
const worker = (
  id: string,
  capabilities: Partial<WorkerNode['capabilities']> = {},
  node: Partial<WorkerNode> = {},
): WorkerNode => ({
  id,
  endpoint: `http://${id}:9000`,
  capabilities: { os: 'linux', installedTools: [], maxParallelModules: 1, tags: [], ...capabilities },
  lastHeartbeat: '2025-09-30T10:00:00.000Z',
  currentLoad: 0,
  status: 'Available',
  pipeline: { ...CI, modules: ['build'] },
  ...node,
});

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
    const pipeline = CI;
    expect(noCapableWorkerReason(pipeline, {}, [])).toBe(
      "no live worker with pipeline 'ci' (fingerprint sha256:abc) was registered",
    );
    expect(noCapableWorkerReason(pipeline, { tags: ['gpu'] }, [worker('w1'), worker('w2')])).toBe(
      "it needs tag 'gpu', and no live worker has it: w1 lacks tag 'gpu'; w2 lacks tag 'gpu'",
    );
  });

  it('noCapableWorkerReason: names every registered worker that does not fit, and why', () => {
    const other = { name: 'deploy', fingerprint: 'sha256:def', modules: [] };
    const workers = [
      worker('w-other', {}, { pipeline: other }),
      worker('w-none', {}, { pipeline: null }),
      worker('w-old', {}, { pipeline: { name: 'ci', fingerprint: 'sha256:0123456789abcdef0123', modules: [] } }),
      worker('w-gone', {}, { status: 'Offline' }),
      worker('w-drained', {}, { status: 'Draining' }),
      worker('w-refused'),
    ];
    const quarantined = (id: string) => (id === 'w-refused' ? 'quarantined for this run (ECONNREFUSED)' : undefined);
    expect(noCapableWorkerReason(CI, {}, workers, quarantined)).toBe(
      "no live worker with pipeline 'ci' (fingerprint sha256:abc) was registered: " +
        "w-other loaded pipeline 'deploy', not 'ci'; w-none loaded no pipeline; " +
        "w-old loaded another version of pipeline 'ci' (fingerprint sha256:0123456789ab…, this run's is sha256:abc); " +
        'w-gone is Offline (last heartbeat 2025-09-30T10:00:00.000Z); w-drained is draining; ' +
        'w-refused is quarantined for this run (ECONNREFUSED)',
    );
    expect(noCapableWorkerReason(CI, { tags: ['gpu'] }, [worker('w1'), workers[0]!])).toBe(
      "it needs tag 'gpu', and no live worker has it: w1 lacks tag 'gpu'; w-other loaded pipeline 'deploy', not 'ci'",
    );
    expect(unfitReason(worker('w1'), CI)).toBeUndefined();
  });

  it('noLiveWorkerCanRun: what the module asks for, and every registered worker and why it does not fit', () => {
    expect(noLiveWorkerCanRun(CI, {}, [])).toBe(
      "no live worker can run it (it asks for pipeline 'ci' (fingerprint sha256:abc)): no worker is registered",
    );
    const other = worker('w-other', {}, { pipeline: { name: 'deploy', fingerprint: 'sha256:def', modules: [] } });
    expect(noLiveWorkerCanRun(CI, { tools: ['docker'], tags: ['gpu'] }, [worker('w1', { tags: ['gpu'] }), other])).toBe(
      "no live worker can run it (it asks for pipeline 'ci' (fingerprint sha256:abc), tool 'docker', tag 'gpu'): " +
        "w1 lacks tool 'docker'; w-other loaded pipeline 'deploy', not 'ci'",
    );
  });
});
