import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_WORKER_OPTIONS } from '../worker-options.js';
import { workerOptions } from './options-from-settings.js';
import { parseSettings, SETTINGS } from './settings.js';

const noTls = { server: undefined, orchestrator: undefined };

describe('workerOptions', () => {
  it('hands the defaults on, leaving out what is not set, so that the worker chooses', () => {
    expect(workerOptions(parseSettings({ port: '9000', host: '0.0.0.0' }), noTls, '/home/ci')).toStrictEqual({
      port: 9000,
      host: '0.0.0.0',
    });
  });

  it('hands every setting on under its option name, the credential file and the cache directory resolved against the base directory', () => {
    const settings = parseSettings({
      port: '0',
      host: '127.0.0.1',
      id: 'w1',
      endpoint: 'https://w1.example.com:9443',
      orchestrator: 'https://ci.example.com',
      tags: 'gpu',
      tools: 'node,git',
      slots: '6',
      isolation: 'none',
      killGraceMs: '0.5',
      moduleHeapLimitMb: '256',
      joinToken: 'join-token-0123456789',
      credentialFile: 'state/credential',
      bodyLimit: '20mb',
      maxResultBytes: '2mb',
      packStallMs: '10',
      cacheDir: 'cache',
      token: 'worker-token-0123456789',
      logLevel: 'debug',
    });
    const tls = { server: { cert: 'CERT', key: 'KEY' }, orchestrator: { ca: 'CA' } };
    expect(workerOptions(settings, tls, '/home/ci')).toStrictEqual({
      port: 0,
      host: '127.0.0.1',
      id: 'w1',
      endpoint: 'https://w1.example.com:9443',
      orchestratorUrl: 'https://ci.example.com',
      tags: ['gpu'],
      tools: ['node', 'git'],
      slots: 6,
      isolation: 'none',
      killGraceMs: 500,
      moduleHeapLimitMb: 256,
      joinToken: 'join-token-0123456789',
      credentialFile: '/home/ci/state/credential',
      bodyLimit: '20mb',
      maxResultBytes: 2 * 1024 * 1024,
      cacheDir: '/home/ci/cache',
      packStallMs: 10_000,
      token: 'worker-token-0123456789',
      tls: { cert: 'CERT', key: 'KEY' },
      orchestratorTls: { ca: 'CA' },
    });
  });

  it('hands on, with no flag given, the library defaults (DEFAULT_WORKER_OPTIONS): the table does not type them again', () => {
    const options = workerOptions(parseSettings(SETTINGS.withDefaults({})), noTls, '/home/ci');
    expect(Object.keys(options)).toEqual([
      'port',
      'host',
      'killGraceMs',
      'bodyLimit',
      'maxResultBytes',
      'inlineResultBytes',
      'cacheDir',
      'cacheMaxBytes',
      'packStallMs',
      'outputBufferBytes',
      'outputSpillBytes',
      'open',
    ]);
    expect(options).toStrictEqual({
      port: DEFAULT_WORKER_OPTIONS.port,
      host: DEFAULT_WORKER_OPTIONS.host,
      killGraceMs: DEFAULT_WORKER_OPTIONS.killGraceMs,
      bodyLimit: DEFAULT_WORKER_OPTIONS.bodyLimit,
      maxResultBytes: DEFAULT_WORKER_OPTIONS.maxResultBytes,
      inlineResultBytes: DEFAULT_WORKER_OPTIONS.inlineResultBytes,
      // Relative to the command's directory, as every path setting is.
      cacheDir: join('/home/ci', DEFAULT_WORKER_OPTIONS.cacheDir),
      cacheMaxBytes: DEFAULT_WORKER_OPTIONS.cacheMaxBytes,
      packStallMs: DEFAULT_WORKER_OPTIONS.packStallMs,
      outputBufferBytes: DEFAULT_WORKER_OPTIONS.outputBufferBytes,
      outputSpillBytes: DEFAULT_WORKER_OPTIONS.outputSpillBytes,
      open: DEFAULT_WORKER_OPTIONS.open,
    });
  });
});
