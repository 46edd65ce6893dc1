import { describe, expect, it } from 'vitest';
import { WORKER_ENDPOINT_RULE } from '@mpd/contract';
import { WorkerConfigError } from '../errors.js';
import { createCommand, parseSettings } from './settings.js';

/**
 * Parses `args` with the real `mpd-worker` command under exactly the MPD_* variables of
 * `env` (others are hidden for the call), then validates what commander collected.
 */
function parse(args: string[], env: Record<string, string> = {}) {
  const saved = { ...process.env };
  for (const key of Object.keys(process.env)) if (key.startsWith('MPD_')) delete process.env[key];
  Object.assign(process.env, env);
  try {
    const command = createCommand()
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    command.parse(args, { from: 'user' });
    return parseSettings(command);
  } finally {
    for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key];
    Object.assign(process.env, saved);
  }
}

function errorOf(action: () => unknown): WorkerConfigError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(WorkerConfigError);
    expect((error as WorkerConfigError).code).toBe('InvalidSetting');
    return error as WorkerConfigError;
  }
  throw new Error('expected a WorkerConfigError');
}

describe('createCommand + parseSettings', () => {
  it('fills in the defaults: port 9000, host 0.0.0.0, kill grace 10 s, body limit 100mb, result size 128mb, inline result size 256kb, log level info, nothing else', () => {
    expect(parse([])).toEqual({
      port: 9000,
      host: '0.0.0.0',
      killGraceMs: 10_000,
      bodyLimit: '100mb',
      maxResultBytes: 128 * 1024 * 1024,
      inlineResultBytes: 256 * 1024,
      cacheDir: '.mpd/artifact-cache',
      cacheMaxBytes: 5 * 1024 ** 3,
      packStallMs: 30_000,
      outputBufferBytes: 1024 * 1024,
      outputSpillBytes: 64 * 1024 * 1024,
      logLevel: 'info',
      open: false,
    });
  });

  it('parses every flag', () => {
    expect(
      parse([
        '--port',
        '0',
        '--host',
        '127.0.0.1',
        '--orchestrator',
        'http://orchestrator:8080',
        '--id',
        'worker-a1',
        '--endpoint',
        'https://worker-a1.example.com:9443',
        '--tags',
        'gpu, high-memory ,',
        '--tools',
        'docker,node,dotnet',
        '--slots',
        '6',
        '--pipeline',
        'ci.pipeline.ts',
        '--max-result-size',
        '8mb',
        '--inline-result-size',
        '64kb',
        '--isolation',
        'none',
        '--kill-grace',
        '2.5',
        '--module-heap-limit',
        '512',
        '--pack-stall',
        '12.5',
        '--log-level',
        'debug',
        '--open',
      ]),
    ).toEqual({
      port: 0,
      host: '127.0.0.1',
      orchestrator: 'http://orchestrator:8080',
      id: 'worker-a1',
      endpoint: 'https://worker-a1.example.com:9443',
      tags: ['gpu', 'high-memory'],
      tools: ['docker', 'node', 'dotnet'],
      slots: 6,
      pipeline: 'ci.pipeline.ts',
      isolation: 'none',
      killGraceMs: 2_500,
      moduleHeapLimitMb: 512,
      bodyLimit: '100mb',
      maxResultBytes: 8 * 1024 * 1024,
      inlineResultBytes: 64 * 1024,
      cacheDir: '.mpd/artifact-cache',
      cacheMaxBytes: 5 * 1024 ** 3,
      packStallMs: 12_500,
      outputBufferBytes: 1024 * 1024,
      outputSpillBytes: 64 * 1024 * 1024,
      logLevel: 'debug',
      open: true,
    });
  });

  it('parses every environment variable', () => {
    expect(
      parse([], {
        MPD_PORT: '9100',
        MPD_HOST: '::',
        MPD_ORCHESTRATOR_URL: 'https://ci.example.com',
        MPD_WORKER_ID: 'env-worker',
        MPD_ENDPOINT: 'http://10.0.0.5:9100',
        MPD_TAGS: 'linux,arm64',
        MPD_TOOLS: 'git',
        MPD_SLOTS: '1024',
        MPD_PIPELINE: '/srv/ci.pipeline.ts',
        MPD_MAX_RESULT_SIZE: '512kb',
        MPD_INLINE_RESULT_SIZE: '128kb',
        MPD_ISOLATION: 'process',
        MPD_KILL_GRACE: '0',
        MPD_MODULE_HEAP_LIMIT: '64',
        MPD_PACK_STALL: '5',
        MPD_LOG_LEVEL: 'silent',
        MPD_OPEN: '1',
      }),
    ).toEqual({
      port: 9100,
      host: '::',
      orchestrator: 'https://ci.example.com',
      id: 'env-worker',
      endpoint: 'http://10.0.0.5:9100',
      tags: ['linux', 'arm64'],
      tools: ['git'],
      slots: 1024,
      pipeline: '/srv/ci.pipeline.ts',
      isolation: 'process',
      killGraceMs: 0,
      moduleHeapLimitMb: 64,
      bodyLimit: '100mb',
      maxResultBytes: 512 * 1024,
      inlineResultBytes: 128 * 1024,
      cacheDir: '.mpd/artifact-cache',
      cacheMaxBytes: 5 * 1024 ** 3,
      packStallMs: 5_000,
      outputBufferBytes: 1024 * 1024,
      outputSpillBytes: 64 * 1024 * 1024,
      logLevel: 'silent',
      open: true,
    });
  });

  it('takes the TLS files from flags or environment variables, as given', () => {
    expect(
      parse(
        ['--tls-cert', 'worker.crt', '--tls-key', 'worker.key', '--tls-client-ca', 'ca.crt', '--tls-ca', ' ca.crt '],
        { MPD_TLS_CLIENT_CERT: '/etc/mpd/client.crt', MPD_TLS_CLIENT_KEY: '/etc/mpd/client.key' },
      ),
    ).toEqual({
      port: 9000,
      host: '0.0.0.0',
      killGraceMs: 10_000,
      bodyLimit: '100mb',
      maxResultBytes: 128 * 1024 * 1024,
      inlineResultBytes: 256 * 1024,
      cacheDir: '.mpd/artifact-cache',
      cacheMaxBytes: 5 * 1024 ** 3,
      packStallMs: 30_000,
      outputBufferBytes: 1024 * 1024,
      outputSpillBytes: 64 * 1024 * 1024,
      logLevel: 'info',
      open: false,
      tlsCert: 'worker.crt',
      tlsKey: 'worker.key',
      tlsClientCa: 'ca.crt',
      tlsCa: 'ca.crt',
      tlsClientCert: '/etc/mpd/client.crt',
      tlsClientKey: '/etc/mpd/client.key',
    });
    // The orchestrator's CA alone is fine: it verifies an https:// orchestrator.
    expect(parse([], { MPD_TLS_CA: 'ca.crt' })).toMatchObject({ tlsCa: 'ca.crt' });
  });

  it('prefers a flag over its environment variable', () => {
    expect(parse(['--port', '9200', '--slots', '2'], { MPD_PORT: '9100', MPD_SLOTS: '8' })).toMatchObject({
      port: 9200,
      slots: 2,
    });
  });

  it('trims integers and URLs; an empty list is an empty list', () => {
    expect(parse(['--port', ' 8000 ', '--orchestrator', ' http://o:1 ', '--tags', ''])).toMatchObject({
      port: 8000,
      orchestrator: 'http://o:1',
      tags: [],
    });
  });

  it.each([
    [['--port', 'abc'], {}, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"'],
    [['--port', '70000'], {}, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "70000"'],
    [['--port', '-1'], {}, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "-1"'],
    [[], { MPD_PORT: '80.5' }, 'Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "80.5"'],
    [['--host', ' '], {}, 'Invalid setting --host (MPD_HOST): must not be empty, got " "'],
    [
      ['--inline-result-size', '1.5mb', '--max-result-size', '1mb'],
      {},
      'Invalid setting --inline-result-size (MPD_INLINE_RESULT_SIZE): must be at most --max-result-size (MPD_MAX_RESULT_SIZE) (1048576 bytes), got "1.5mb"',
    ],
    [
      ['--orchestrator', 'ftp://x'],
      {},
      'Invalid setting --orchestrator (MPD_ORCHESTRATOR_URL): must be an http:// or https:// URL, got "ftp://x"',
    ],
    [
      [],
      { MPD_ORCHESTRATOR_URL: 'orchestrator:8080/api' },
      'Invalid setting --orchestrator (MPD_ORCHESTRATOR_URL): must be an http:// or https:// URL, got "orchestrator:8080/api"',
    ],
    [
      ['--orchestrator', 'not a url'],
      {},
      'Invalid setting --orchestrator (MPD_ORCHESTRATOR_URL): must be a URL such as http://127.0.0.1:8080, got "not a url"',
    ],
    [
      ['--endpoint', 'ftp://x'],
      {},
      'Invalid setting --endpoint (MPD_ENDPOINT): must be an http:// or https:// URL, got "ftp://x"',
    ],
    [
      ['--endpoint', 'http://w1:9000/api?x='],
      {},
      `Invalid setting --endpoint (MPD_ENDPOINT): ${WORKER_ENDPOINT_RULE}, got "http://w1:9000/api?…"`,
    ],
    [
      ['--id', 'my worker'],
      {},
      'Invalid setting --id (MPD_WORKER_ID): must be 1-128 letters, digits and . _ ~ -, starting with a letter or digit, got "my worker"',
    ],
    [
      ['--tags', 'gpu,high memory'],
      {},
      'Invalid setting --tags (MPD_TAGS): must be a comma-separated list of names (letters, digits, . _ + -), got "gpu,high memory"',
    ],
    [
      [],
      { MPD_TOOLS: 'docker,dot net' },
      'Invalid setting --tools (MPD_TOOLS): must be a comma-separated list of names (letters, digits, . _ + -), got "docker,dot net"',
    ],
    [
      ['--max-parallel', '0'],
      {},
      'Invalid setting --max-parallel (MPD_MAX_PARALLEL): must be an integer from 1 to 1024, got "0"',
    ],
    [
      [],
      { MPD_MAX_PARALLEL: '0' },
      'Invalid setting --max-parallel (MPD_MAX_PARALLEL): must be an integer from 1 to 1024, got "0"',
    ],
    [
      ['--max-parallel', '1025'],
      {},
      'Invalid setting --max-parallel (MPD_MAX_PARALLEL): must be an integer from 1 to 1024, got "1025"',
    ],
    [
      ['--max-parallel', 'four'],
      {},
      'Invalid setting --max-parallel (MPD_MAX_PARALLEL): must be an integer from 1 to 1024, got "four"',
    ],
    [['--slots', '0'], {}, 'Invalid setting --slots (MPD_SLOTS): must be an integer from 1 to 1024, got "0"'],
    [[], { MPD_SLOTS: '1025' }, 'Invalid setting --slots (MPD_SLOTS): must be an integer from 1 to 1024, got "1025"'],
    [['--pipeline', '  '], {}, 'Invalid setting --pipeline (MPD_PIPELINE): must be a file path, got "  "'],
    [
      ['--isolation', 'thread'],
      {},
      `Invalid setting --isolation (MPD_ISOLATION): must be 'process' or 'none', got "thread"`,
    ],
    [
      ['--kill-grace', '-1'],
      {},
      'Invalid setting --kill-grace (MPD_KILL_GRACE): must be a number of seconds from 0 to 3600, got "-1"',
    ],
    [
      [],
      { MPD_KILL_GRACE: '3601' },
      'Invalid setting --kill-grace (MPD_KILL_GRACE): must be a number of seconds from 0 to 3600, got "3601"',
    ],
    [
      ['--pack-stall', '0'],
      {},
      'Invalid setting --pack-stall (MPD_PACK_STALL): must be a number of seconds from 1 to 3600, got "0"',
    ],
    [
      [],
      { MPD_PACK_STALL: '30s' },
      'Invalid setting --pack-stall (MPD_PACK_STALL): must be a number of seconds from 1 to 3600, got "30s"',
    ],
    [
      ['--module-heap-limit', '8'],
      {},
      'Invalid setting --module-heap-limit (MPD_MODULE_HEAP_LIMIT): must be an integer from 16 to 1048576, got "8"',
    ],
    [
      ['--tls-cert', 'worker.crt'],
      {},
      'Invalid setting --tls-cert (MPD_TLS_CERT): needs --tls-key (MPD_TLS_KEY) too, got "worker.crt"',
    ],
    [
      [],
      { MPD_TLS_KEY: 'worker.key' },
      'Invalid setting --tls-key (MPD_TLS_KEY): needs --tls-cert (MPD_TLS_CERT) too, got "worker.key"',
    ],
    [
      ['--tls-client-ca', 'ca.crt'],
      {},
      'Invalid setting --tls-client-ca (MPD_TLS_CLIENT_CA): needs --tls-cert (MPD_TLS_CERT) and --tls-key (MPD_TLS_KEY) too, got "ca.crt"',
    ],
    [
      ['--tls-client-cert', 'client.crt'],
      {},
      'Invalid setting --tls-client-cert (MPD_TLS_CLIENT_CERT): needs --tls-client-key (MPD_TLS_CLIENT_KEY) too, got "client.crt"',
    ],
    [
      ['--tls-client-key', 'client.key'],
      {},
      'Invalid setting --tls-client-key (MPD_TLS_CLIENT_KEY): needs --tls-client-cert (MPD_TLS_CLIENT_CERT) too, got "client.key"',
    ],
    [['--tls-ca', ' '], {}, 'Invalid setting --tls-ca (MPD_TLS_CA): must be a file path, got " "'],
    [
      ['--log-level', 'loud'],
      {},
      'Invalid setting --log-level (MPD_LOG_LEVEL): must be one of fatal, error, warn, info, debug, trace, silent, got "loud"',
    ],
  ] as [string[], Record<string, string>, string][])(
    'refuses %j %j naming the flag and the variable',
    (args, env, message) => {
      expect(errorOf(() => parse(args, env)).message).toBe(message);
    },
  );

  it('names the setting in the error, by the name it was given with (a code and a setting, like the orchestrator)', () => {
    expect(errorOf(() => parse(['--port', 'abc']))).toMatchObject({
      code: 'InvalidSetting',
      setting: '--port (MPD_PORT)',
    });
    expect(errorOf(() => parse([], { MPD_MAX_PARALLEL: '0' }))).toMatchObject({
      setting: '--max-parallel (MPD_MAX_PARALLEL)',
    });
    expect(errorOf(() => parse(['--tls-cert', 'worker.crt'])).setting).toBe('--tls-cert (MPD_TLS_CERT)');
  });

  it('refuses a host with spaces inside, as the orchestrator does', () => {
    expect(errorOf(() => parse(['--host', 'a b'])).message).toBe(
      'Invalid setting --host (MPD_HOST): must be a host name or IP address without spaces, got "a b"',
    );
  });

  it('parseSettings accepts raw values directly and reports the first bad setting in flag order', () => {
    expect(parseSettings({ port: '1', maxParallel: '3', tags: 'a,b' })).toEqual({
      port: 1,
      slots: 3,
      tags: ['a', 'b'],
    });
    expect(errorOf(() => parseSettings({ maxParallel: '0', port: 'x' })).message).toMatch(
      /^Invalid setting --port \(MPD_PORT\)/,
    );
    expect(errorOf(() => parseSettings({ port: '1', maxParallel: '0' })).message).toMatch(
      /^Invalid setting --max-parallel \(MPD_MAX_PARALLEL\)/,
    );
  });

  it('createCommand names each flag with its environment variable', () => {
    const options = createCommand().options.map((option) => [option.long, option.envVar]);
    expect(options).toEqual([
      ['--port', 'MPD_PORT'],
      ['--host', 'MPD_HOST'],
      ['--orchestrator', 'MPD_ORCHESTRATOR_URL'],
      ['--id', 'MPD_WORKER_ID'],
      ['--endpoint', 'MPD_ENDPOINT'],
      ['--tags', 'MPD_TAGS'],
      ['--tools', 'MPD_TOOLS'],
      ['--slots', 'MPD_SLOTS'],
      ['--max-parallel', 'MPD_MAX_PARALLEL'],
      ['--pipeline', 'MPD_PIPELINE'],
      ['--isolation', 'MPD_ISOLATION'],
      ['--kill-grace', 'MPD_KILL_GRACE'],
      ['--module-heap-limit', 'MPD_MODULE_HEAP_LIMIT'],
      ['--join-token', 'MPD_JOIN_TOKEN'],
      ['--credential-file', 'MPD_CREDENTIAL_FILE'],
      ['--token', 'MPD_WORKER_TOKEN'],
      ['--open', 'MPD_OPEN'],
      ['--tls-cert', 'MPD_TLS_CERT'],
      ['--tls-key', 'MPD_TLS_KEY'],
      ['--tls-client-ca', 'MPD_TLS_CLIENT_CA'],
      ['--tls-ca', 'MPD_TLS_CA'],
      ['--tls-client-cert', 'MPD_TLS_CLIENT_CERT'],
      ['--tls-client-key', 'MPD_TLS_CLIENT_KEY'],
      ['--body-limit', 'MPD_BODY_LIMIT'],
      ['--max-result-size', 'MPD_MAX_RESULT_SIZE'],
      ['--inline-result-size', 'MPD_INLINE_RESULT_SIZE'],
      ['--cache-dir', 'MPD_CACHE_DIR'],
      ['--cache-size', 'MPD_CACHE_SIZE'],
      ['--pack-stall', 'MPD_PACK_STALL'],
      ['--output-buffer-size', 'MPD_OUTPUT_BUFFER_SIZE'],
      ['--output-spill-size', 'MPD_OUTPUT_SPILL_SIZE'],
      ['--log-level', 'MPD_LOG_LEVEL'],
      // Not a setting: no environment variable.
      ['--version', undefined],
    ]);
  });

  it('createCommand refuses unknown flags and excess arguments', () => {
    expect(() => parse(['--prot', '1'])).toThrow(/unknown option '--prot'/);
    expect(() => parse(['extra'])).toThrow(/too many arguments/);
  });
});

describe('--output-buffer-size and --output-spill-size (module output waiting to be shipped, per execution)', () => {
  it('read sizes with units, from the flags or the environment, and refuse a size that is not one', () => {
    expect(parse(['--output-buffer-size', '4mb', '--output-spill-size', '1gb'])).toMatchObject({
      outputBufferBytes: 4 * 1024 * 1024,
      outputSpillBytes: 1024 ** 3,
    });
    expect(parse([], { MPD_OUTPUT_BUFFER_SIZE: '256kb' }).outputBufferBytes).toBe(256 * 1024);
    expect(() => parse(['--output-spill-size', 'lots'])).toThrow(/output-spill-size/);
  });
});

describe('--slots, and its old name --max-parallel', () => {
  it('reads --slots and MPD_SLOTS, and --max-parallel and MPD_MAX_PARALLEL still', () => {
    expect(parse(['--slots', '2']).slots).toBe(2);
    expect(parse([], { MPD_SLOTS: '3' }).slots).toBe(3);
    expect(parse(['--max-parallel', '4']).slots).toBe(4);
    expect(parse([], { MPD_MAX_PARALLEL: '5' }).slots).toBe(5);
  });

  it('takes a flag over a variable, and the new name over the old one', () => {
    expect(parse(['--max-parallel', '4'], { MPD_SLOTS: '3' }).slots).toBe(4);
    expect(parse(['--slots', '2', '--max-parallel', '4']).slots).toBe(2);
    expect(parse([], { MPD_SLOTS: '3', MPD_MAX_PARALLEL: '5' }).slots).toBe(3);
  });

  it("--help says --slots is per worker, not the orchestrator's --max-parallelism, and lists the old name as deprecated", () => {
    // Wide enough that no line wraps.
    const help = createCommand().configureHelp({ helpWidth: 1000 }).helpInformation();
    expect(help).toMatch(
      /--slots <n> +how many modules this worker runs at once \(default: number of CPUs\); per worker, not the orchestrator's cluster-wide --max-parallelism \(env: MPD_SLOTS\)/,
    );
    expect(help.slice(help.indexOf('Deprecated (old names, still read):'))).toMatch(
      /--max-parallel <n> +the old name of --slots \(env: MPD_MAX_PARALLEL\)/,
    );
  });
});

describe('--body-limit', () => {
  it('reads the flag and MPD_BODY_LIMIT, and refuses a size it cannot read', () => {
    const command = createCommand().parse(['--body-limit', '20mb'], { from: 'user' });
    expect(parseSettings(command).bodyLimit).toBe('20mb');
    // The worker's own default, read from DEFAULT_WORKER_OPTIONS (and shown in --help).
    expect(parseSettings(createCommand().parse([], { from: 'user' })).bodyLimit).toBe('100mb');
    expect(() => parseSettings({ bodyLimit: 'lots' })).toThrow(
      'Invalid setting --body-limit (MPD_BODY_LIMIT): must be a size in b, kb, mb or gb, such as 512kb, 1mb or 100mb, got "lots"',
    );
  });
});

describe('--max-result-size', () => {
  it('reads a size into bytes (the library default, 128mb, shown in --help), and refuses one it cannot read', () => {
    expect(parse(['--max-result-size', '1.5mb']).maxResultBytes).toBe(1.5 * 1024 * 1024);
    const help = createCommand().configureHelp({ helpWidth: 1000 }).helpInformation();
    expect(help).toMatch(
      /--max-result-size <size> +the largest result a module may return.*\(default: "128mb", env: MPD_MAX_RESULT_SIZE\)/,
    );
    expect(() => parseSettings({ maxResultBytes: '0kb' })).toThrow(
      'Invalid setting --max-result-size (MPD_MAX_RESULT_SIZE): must be a size above 0, such as 512kb, 1mb or 100mb, got "0kb"',
    );
  });
});

describe('--id and --tags, within the contract’s LIMITS', () => {
  it('refuses an id or a name a registration would refuse, naming the flag', () => {
    const rule = 'must be 1-128 letters, digits and . _ ~ -, starting with a letter or digit';
    expect(() => parseSettings({ id: 'i'.repeat(129) })).toThrow(`Invalid setting --id (MPD_WORKER_ID): ${rule}`);
    // Issue 11, case 4: ids that a URL path reads as something else.
    for (const id of ['a/b', 'w1?evil', 'runner#2', '..']) {
      expect(() => parseSettings({ id })).toThrow(
        `Invalid setting --id (MPD_WORKER_ID): ${rule}, got ${JSON.stringify(id)}`,
      );
    }
    expect(parseSettings({ id: 'worker-machine1-abc123' }).id).toBe('worker-machine1-abc123');
    expect(() => parseSettings({ tags: 't'.repeat(129) })).toThrow(
      'Invalid setting --tags (MPD_TAGS): must be names of at most 128 characters',
    );
    expect(() => parseSettings({ tools: Array.from({ length: 257 }, (_, index) => `t${index}`).join(',') })).toThrow(
      'Invalid setting --tools (MPD_TOOLS): must be at most 256 names',
    );
    expect(parseSettings({ tags: 't'.repeat(128) }).tags).toEqual(['t'.repeat(128)]);
  });
});

describe('--open', () => {
  it('is off by default; the flag alone, or MPD_OPEN true/1/yes, turns it on; false/0/no keep it off', () => {
    expect(parse([]).open).toBe(false);
    expect(parse(['--open']).open).toBe(true);
    expect(parse(['--open', '--port', '0']).open).toBe(true);
    for (const on of ['true', '1', 'yes', 'TRUE']) expect(parse([], { MPD_OPEN: on }).open).toBe(true);
    for (const off of ['false', '0', 'no']) expect(parse([], { MPD_OPEN: off }).open).toBe(false);
  });

  it('refuses open mode beside a join token, a token or client certificates', () => {
    const secured: Record<string, string>[] = [
      { MPD_JOIN_TOKEN: 'join-token-0123456789' },
      { MPD_WORKER_TOKEN: 'worker-token-0123456789' },
      { MPD_TLS_CERT: 'w.crt', MPD_TLS_KEY: 'w.key', MPD_TLS_CLIENT_CA: 'ca.crt' },
      { MPD_TLS_CLIENT_CERT: 'c.crt', MPD_TLS_CLIENT_KEY: 'c.key' },
    ];
    for (const env of secured) {
      expect(errorOf(() => parse(['--open'], env)).message).toMatch(
        /^Invalid setting --open \(MPD_OPEN\): must not be given with --join-token, --token or client certificates/,
      );
    }
    expect(parse(['--open=false'], { MPD_JOIN_TOKEN: 'join-token-0123456789' }).open).toBe(false);
  });

  it('refuses any other value rather than read it as on', () => {
    expect(errorOf(() => parse([], { MPD_OPEN: 'maybe' })).message).toBe(
      'Invalid setting --open (MPD_OPEN): must be true or false (1 or 0, yes or no), or the flag alone, got "maybe"',
    );
  });
});
