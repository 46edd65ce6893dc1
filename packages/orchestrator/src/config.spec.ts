import { describe, expect, it } from 'vitest';
import { parseSettings } from './config.js';
import { OrchestratorConfigError } from './errors.js';

describe('parseSettings', () => {
  it('fills in the defaults', () => {
    expect(parseSettings({})).toEqual({
      port: 8080,
      host: '0.0.0.0',
      heartbeatIntervalSeconds: 30,
      heartbeatTimeoutMs: 120_000,
      pipeline: undefined,
      minWorkers: 1,
      logLevel: 'info',
    });
  });

  it('converts the raw strings', () => {
    expect(
      parseSettings({
        port: '0',
        host: '127.0.0.1',
        heartbeatInterval: '0.5',
        heartbeatTimeout: '2.25',
        pipeline: 'ci.pipeline.ts',
        minWorkers: '3',
        logLevel: 'silent',
      }),
    ).toEqual({
      port: 0,
      host: '127.0.0.1',
      heartbeatIntervalSeconds: 0.5,
      heartbeatTimeoutMs: 2_250,
      pipeline: 'ci.pipeline.ts',
      minWorkers: 3,
      logLevel: 'silent',
    });
  });

  it.each([
    [{ port: 'abc' }, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"'],
    [{ port: '65536' }, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "65536"'],
    [{ port: '-1' }, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "-1"'],
    [{ host: 'a b' }, 'Invalid setting --host (MPD_HOST): must be a host name or IP address without spaces, got "a b"'],
    [
      { heartbeatInterval: '0' },
      'Invalid setting --heartbeat-interval (MPD_HEARTBEAT_INTERVAL): must be a number of seconds above 0 and at most 86400, got "0"',
    ],
    [
      { heartbeatTimeout: '30' },
      'Invalid setting --heartbeat-timeout (MPD_HEARTBEAT_TIMEOUT): must be greater than --heartbeat-interval (MPD_HEARTBEAT_INTERVAL) (30), got "30"',
    ],
    [{ minWorkers: '0' }, 'Invalid setting --min-workers (MPD_MIN_WORKERS): must be an integer from 1 to 1024, got "0"'],
    [{ pipeline: '' }, 'Invalid setting --pipeline (MPD_PIPELINE): must be a file path, not empty, got ""'],
    [
      { logLevel: 'loud' },
      'Invalid setting --log-level (MPD_LOG_LEVEL): must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ],
  ])('refuses %j naming the setting', (raw, message) => {
    let error: unknown;
    try {
      parseSettings(raw);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(OrchestratorConfigError);
    expect((error as OrchestratorConfigError).code).toBe('InvalidSetting');
    expect((error as OrchestratorConfigError).message).toBe(message);
  });
});
