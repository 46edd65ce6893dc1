import { Command, CommanderError } from 'commander';
import { afterEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import { z } from 'zod';
import { definedOnly, defineSettings } from './define-settings.js';

const integer = z
  .string()
  .regex(/^\d+$/, 'must be an integer')
  .transform(Number)
  .refine((n) => n <= 1000, 'must be at most 1000');
const entries = z.array(z.string().regex(/^[A-Z]+=.*$/, 'must be NAME=VALUE'));

/** A small table with one row of each kind; its variables are DS_* so no real setting interferes. */
const SETTINGS = defineSettings(
  {
    port: { flag: '--port <n>', env: 'DS_PORT', default: '80', help: 'port', schema: integer },
    slots: {
      flag: '--slots <n>',
      env: 'DS_SLOTS',
      help: 'modules at once',
      schema: integer,
      aliases: [{ flag: '--max-parallel', env: 'DS_MAX_PARALLEL' }],
    },
    token: {
      flag: '--token <token>',
      env: 'DS_TOKEN',
      help: 'a token',
      schema: z.string().min(16, 'too short'),
      secret: true,
    },
    env: { flag: '--env <NAME=VALUE>', env: 'DS_ENV', help: 'variables', schema: entries, repeatable: true },
    secretEnv: {
      flag: '--secret-env <NAME=VALUE>',
      env: 'DS_SECRET_ENV',
      help: 'secret variables',
      schema: entries,
      repeatable: true,
      secret: true,
      holdsSecret: (entry) => /=./.test(entry),
    },
    tags: {
      flag: '--tags <list>',
      env: 'DS_TAGS',
      help: 'comma-separated tags',
      schema: z
        .string()
        .transform((text) => text.split(','))
        .pipe(z.array(z.string().regex(/^\w+$/, 'must be names'))),
    },
    cert: { flag: '--cert <file>', env: 'DS_CERT', help: 'certificate', schema: z.string() },
    key: { flag: '--key <file>', env: 'DS_KEY', help: 'key', schema: z.string() },
  },
  {
    needs: [['cert', ['key']]],
    check: (settings, { fail, nameOf }) => {
      if (settings.slots !== undefined && settings.slots > settings.port) {
        fail('slots', `must be at most ${nameOf('port')} (${settings.port})`);
      }
    },
  },
);

afterEach(() => vi.unstubAllEnvs());

/** Parses `args` with the table's command, with only the variables of `env` among the table's set. */
function commandOf(args: string[], env: Record<string, string> = {}): Command {
  for (const row of Object.values(SETTINGS.rows)) {
    for (const name of [row.env, ...('aliases' in row ? row.aliases.map((alias) => alias.env) : [])]) {
      vi.stubEnv(name, env[name]);
    }
  }
  return SETTINGS.command('ds', 'a test command')
    .exitOverride()
    .configureOutput({ writeErr: () => {}, writeOut: () => {} })
    .parse(args, { from: 'user' });
}

function messageOf(action: () => unknown): string {
  try {
    action();
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected an error');
}

describe('defineSettings', () => {
  it('builds one option per row, each with its variable and default, old names after it', () => {
    const command = SETTINGS.command('ds', 'a test command');
    expect(command.options.map((option) => [option.long, option.envVar, option.defaultValue])).toEqual([
      ['--port', 'DS_PORT', '80'],
      ['--slots', 'DS_SLOTS', undefined],
      ['--max-parallel', 'DS_MAX_PARALLEL', undefined],
      ['--token', 'DS_TOKEN', undefined],
      ['--env', 'DS_ENV', undefined],
      ['--secret-env', 'DS_SECRET_ENV', undefined],
      ['--tags', 'DS_TAGS', undefined],
      ['--cert', 'DS_CERT', undefined],
      ['--key', 'DS_KEY', undefined],
    ]);
    const help = command.configureHelp({ helpWidth: 1000 }).helpInformation();
    expect(help).toMatch(/^Usage: ds \[options\]\n\na test command\n/);
    expect(help).toMatch(/--slots <n> +modules at once \(env: DS_SLOTS\)/);
    expect(help).toMatch(
      /Deprecated \(old names, still read\):\n +--max-parallel <n> +the old name of --slots \(env: DS_MAX_PARALLEL\)/,
    );
    expect(help).toContain('-h, --help');
  });

  it('lists every setting, undefined when not given', () => {
    expect(Object.entries(SETTINGS.parse({ slots: '3' }))).toEqual([
      ['port', undefined],
      ['slots', 3],
      ['token', undefined],
      ['env', undefined],
      ['secretEnv', undefined],
      ['tags', undefined],
      ['cert', undefined],
      ['key', undefined],
    ]);
  });

  it('reads a flag, else its variable, else its default; the flag wins', () => {
    expect(SETTINGS.parse(commandOf([]))).toEqual({ port: 80 });
    expect(SETTINGS.parse(commandOf([], { DS_PORT: '81' }))).toEqual({ port: 81 });
    expect(SETTINGS.parse(commandOf(['--port', '82'], { DS_PORT: '81' }))).toEqual({ port: 82 });
  });

  it('reads an old name as the setting; a flag wins over a variable, and a new name over an old one', () => {
    expect(SETTINGS.parse(commandOf(['--max-parallel', '3']))).toEqual({ port: 80, slots: 3 });
    expect(SETTINGS.parse(commandOf([], { DS_MAX_PARALLEL: '4' }))).toEqual({ port: 80, slots: 4 });
    expect(SETTINGS.parse(commandOf(['--max-parallel', '3'], { DS_SLOTS: '5' })).slots).toBe(3);
    expect(SETTINGS.parse(commandOf(['--slots', '2', '--max-parallel', '3'])).slots).toBe(2);
    expect(SETTINGS.parse(commandOf([], { DS_SLOTS: '5', DS_MAX_PARALLEL: '4' })).slots).toBe(5);
    expect(SETTINGS.raw(commandOf(['--max-parallel', '3']))).toEqual({ port: '80', maxParallel: '3' });
  });

  it('tells which old names were given, by flag, variable or key, with the line to warn with', () => {
    const warning = {
      key: 'slots',
      oldName: '--max-parallel (DS_MAX_PARALLEL)',
      name: '--slots (DS_SLOTS)',
      message: '--max-parallel (DS_MAX_PARALLEL) is deprecated; use --slots (DS_SLOTS)',
    };
    expect(SETTINGS.oldNamesGiven(commandOf(['--max-parallel', '3']))).toEqual([warning]);
    expect(SETTINGS.oldNamesGiven(commandOf([], { DS_MAX_PARALLEL: '4' }))).toEqual([warning]);
    expect(SETTINGS.oldNamesGiven({ maxParallel: '3' })).toEqual([warning]);
    // Given beside the new name, the old one is ignored, and still deprecated.
    expect(SETTINGS.oldNamesGiven(commandOf(['--slots', '2'], { DS_MAX_PARALLEL: '4' }))).toEqual([warning]);
    expect(SETTINGS.oldNamesGiven(commandOf(['--slots', '2', '--port', '81'], { DS_SLOTS: '3' }))).toEqual([]);
    expect(SETTINGS.oldNamesGiven({ slots: '2' })).toEqual([]);
  });

  it('tells which secrets were given by flag, naming the flag and the variable to use instead, never the value', () => {
    const value = 'hunter2-hunter2-hunter2';
    const given = SETTINGS.secretFlagsGiven(
      commandOf(['--secret-env', `A=${value}`, `--token=${value}`, '--env', 'B=plain', '--port', '81']),
    );
    expect(given).toEqual([
      {
        key: 'token',
        flag: '--token',
        env: 'DS_TOKEN',
        message:
          '--token puts a secret on the command line, where ps, shell history and tools that echo commands (pnpm, CI logs) show it; set DS_TOKEN instead',
      },
      {
        key: 'secretEnv',
        flag: '--secret-env',
        env: 'DS_SECRET_ENV',
        message:
          '--secret-env puts a secret on the command line, where ps, shell history and tools that echo commands (pnpm, CI logs) show it; set DS_SECRET_ENV instead (one entry per line)',
      },
    ]);
    expect(JSON.stringify(given)).not.toContain(value);
    // Variables are the safe way; an entry without a value (NAME alone, or NAME=) holds no secret.
    expect(SETTINGS.secretFlagsGiven(commandOf([], { DS_TOKEN: value, DS_SECRET_ENV: `A=${value}` }))).toEqual([]);
    expect(SETTINGS.secretFlagsGiven(commandOf(['--secret-env', 'A', '--secret-env', 'B=']))).toEqual([]);
    expect(SETTINGS.secretFlagsGiven(commandOf(['--secret-env', 'A', '--secret-env', 'B=x']))).toHaveLength(1);
  });

  it('collects a repeatable flag, or one entry per non-blank line of its variable', () => {
    expect(SETTINGS.raw(commandOf(['--env', 'A=1', '--env', 'B=2,3'])).env).toEqual(['A=1', 'B=2,3']);
    expect(SETTINGS.raw(commandOf([], { DS_ENV: 'A=1\r\nB=two words\n\n  \n' })).env).toEqual(['A=1', 'B=two words']);
    expect(SETTINGS.parse(commandOf(['--env', 'A=1'], { DS_ENV: 'B=2' })).env).toEqual(['A=1']);
  });

  it('refuses excess arguments and unknown flags', () => {
    expect(() => commandOf(['extra'])).toThrow(CommanderError);
    expect(() => commandOf(['--prot', '1'])).toThrow(/unknown option '--prot'/);
  });

  it('names an unknown option without what may be a secret after it: a long one without =value, a short one by its first two characters', () => {
    for (const [arg, named] of [
      ['--join-tokn=SECRETXYZ', '--join-tokn'],
      ['-tSECRETXYZ', '-t'],
      ['-x=SECRETXYZ', '-x'],
      ['-q', '-q'],
    ]) {
      const message = messageOf(() => commandOf([arg!]));
      expect(message).toContain(`unknown option '${named}'`);
      expect(message).not.toContain('SECRET');
    }
  });

  it('checks texts as given without filling in defaults, and fills them in on request', () => {
    expect(SETTINGS.parse({ slots: '3' })).toEqual({ slots: 3 });
    expect(SETTINGS.withDefaults({ slots: '3' })).toEqual({ port: '80', slots: '3' });
    expect(SETTINGS.withDefaults({ port: '1' })).toEqual({ port: '1' });
    // A setting given by its old name takes no default beside it.
    expect(SETTINGS.withDefaults({ maxParallel: '3' })).toEqual({ port: '80', maxParallel: '3' });
  });

  it.each([
    [{ port: 'abc' }, 'Invalid setting --port (DS_PORT): must be an integer, got "abc"'],
    [{ port: '1001' }, 'Invalid setting --port (DS_PORT): must be at most 1000, got "1001"'],
    [{ slots: 'x' }, 'Invalid setting --slots (DS_SLOTS): must be an integer, got "x"'],
    [{ maxParallel: 'x' }, 'Invalid setting --max-parallel (DS_MAX_PARALLEL): must be an integer, got "x"'],
    [{ token: 'secret' }, 'Invalid setting --token (DS_TOKEN): too short, got a value of 6 characters'],
    [{ env: ['A=1', 'b=2'] }, 'Invalid setting --env (DS_ENV): must be NAME=VALUE, got "b=2"'],
    [
      { secretEnv: ['A=1', 'b=hidden'] },
      'Invalid setting --secret-env (DS_SECRET_ENV): must be NAME=VALUE, got an entry of 8 characters',
    ],
    [{ tags: 'gpu,high memory' }, 'Invalid setting --tags (DS_TAGS): must be names, got "gpu,high memory"'],
    [{ cert: 'c.pem' }, 'Invalid setting --cert (DS_CERT): needs --key (DS_KEY) too, got "c.pem"'],
    [{ port: '2', slots: '3' }, 'Invalid setting --slots (DS_SLOTS): must be at most --port (DS_PORT) (2), got "3"'],
    [
      { port: '2', maxParallel: '3' },
      'Invalid setting --max-parallel (DS_MAX_PARALLEL): must be at most --port (DS_PORT) (2), got "3"',
    ],
  ])('refuses %j naming the setting as it was given', (raw, message) => {
    expect(messageOf(() => SETTINGS.parse(raw))).toBe(message);
  });

  // Review of round L: `mpd worker --id <100,000 characters>` echoed it all (after 20 s of redacting).
  it('echoes at most 200 characters of a refused text, then its length', () => {
    const long = 'a'.repeat(100_000);
    expect(messageOf(() => SETTINGS.parse({ port: long }))).toBe(
      `Invalid setting --port (DS_PORT): must be an integer, got "${'a'.repeat(200)}…" (100000 characters)`,
    );
    expect(messageOf(() => SETTINGS.parse({ env: [`A=${long}`, long] }))).toBe(
      `Invalid setting --env (DS_ENV): must be NAME=VALUE, got "${'a'.repeat(200)}…" (100000 characters)`,
    );
    expect(messageOf(() => SETTINGS.parse({ port: 'a'.repeat(200) }))).toBe(
      `Invalid setting --port (DS_PORT): must be an integer, got "${'a'.repeat(200)}"`,
    );
  });

  it('shows a URL setting without its user name, password, query or fragment, also when it is no URL; any other text from its scheme:// on', () => {
    const urls = defineSettings({
      server: {
        flag: '--server <url>',
        env: 'DS_SERVER',
        help: 'a URL',
        schema: z.string().regex(/^https?:\/\/\S+$/, 'must be a URL'),
        url: true,
      },
      origins: {
        flag: '--origins <list>',
        env: 'DS_ORIGINS',
        help: 'URLs',
        schema: z.string().regex(/^\S+$/, 'must be a list'),
        url: true,
      },
      env: { flag: '--env <NAME=VALUE>', env: 'DS_ENV', help: 'variables', schema: entries, repeatable: true },
      name: { flag: '--name <n>', env: 'DS_NAME', help: 'a name', schema: z.string().regex(/^\w+$/, 'must be a name') },
    });
    const cases = [
      [
        { server: 'http://user:pw@exa mple.com:8080/?token=abc' },
        '--server (DS_SERVER): must be a URL, got "http://***@exa mple.com:8080/?…"',
      ],
      // No scheme, a password holding `@`, `/` and a space, a fragment: masked all the same.
      [{ server: 'user:p@s/s w@host' }, '--server (DS_SERVER): must be a URL, got "***@host"'],
      [{ server: 'ftp://host/x#access_token=abc' }, '--server (DS_SERVER): must be a URL, got "ftp://host/x#…"'],
      [
        { origins: 'https://a.example, https://u:pw@b.example' },
        '--origins (DS_ORIGINS): must be a list, got "https://***@b.example"',
      ],
      [
        { env: ['A=1', 'b=postgres://u:pw@db/x?sslkey=k'] },
        '--env (DS_ENV): must be NAME=VALUE, got "b=postgres://***@db/x?…"',
      ],
      [{ name: 'see https://u:pw@host' }, '--name (DS_NAME): must be a name, got "see https://***@host"'],
      // Nothing to mask: shown as given.
      [{ server: 'http://host:1 x' }, '--server (DS_SERVER): must be a URL, got "http://host:1 x"'],
      [{ name: 'a@b?c' }, '--name (DS_NAME): must be a name, got "a@b?c"'],
    ] as const;
    for (const [raw, message] of cases) {
      const shown = messageOf(() => urls.parse(raw));
      expect(shown).toBe(`Invalid setting ${message}`);
      expect(shown).not.toMatch(/pw|token=|sslkey|p@s/);
    }
  });

  it('refuses the first bad setting in table order, then needs, then checks', () => {
    expect(messageOf(() => SETTINGS.parse({ slots: 'x', port: 'y' }))).toMatch(/^Invalid setting --port/);
    expect(messageOf(() => SETTINGS.parse({ cert: 'c.pem', port: '2', slots: '3' }))).toMatch(
      /^Invalid setting --cert/,
    );
  });

  it('names a setting given by a variable by the name it was given by', () => {
    expect(messageOf(() => SETTINGS.parse(commandOf([], { DS_MAX_PARALLEL: 'x' })))).toBe(
      'Invalid setting --max-parallel (DS_MAX_PARALLEL): must be an integer, got "x"',
    );
    expect(messageOf(() => SETTINGS.parse(commandOf([], { DS_SLOTS: 'x', DS_MAX_PARALLEL: '1' })))).toBe(
      'Invalid setting --slots (DS_SLOTS): must be an integer, got "x"',
    );
  });

  it('throws what `error` makes, with the name and, for a schema, the ZodError as cause', () => {
    class SettingError extends Error {
      constructor(
        readonly setting: string,
        message: string,
        options?: { cause?: unknown },
      ) {
        super(message, options);
      }
    }
    const settings = defineSettings(
      { port: { flag: '--port <n>', env: 'DS_PORT', help: 'port', schema: integer } },
      { error: (name, message, cause) => new SettingError(name, message, { cause }) },
    );
    let error: unknown;
    try {
      settings.parse({ port: 'x' });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(SettingError);
    expect(error).toMatchObject({ setting: '--port (DS_PORT)', message: expect.stringMatching(/^Invalid setting/) });
    expect((error as Error).cause).toBeInstanceOf(z.ZodError);
  });

  it('finish turns the checked settings into what parse returns, with the environment it was given', () => {
    const settings = defineSettings(
      {
        env: { flag: '--env <NAME>', env: 'DS_ENV', help: 'variables', schema: z.array(z.string()), repeatable: true },
      },
      {
        finish: ({ env }, processEnv) => ({
          variables: Object.fromEntries((env ?? []).map((name) => [name, processEnv[name] ?? ''])),
        }),
      },
    );
    expect(settings.parse({ env: ['HOME'] }, { HOME: '/home/mpd' })).toEqual({ variables: { HOME: '/home/mpd' } });
    expectTypeOf(settings.parse({})).toEqualTypeOf<{ variables: { [name: string]: string } }>();
  });

  it('infers the types of the settings from the schemas: those with a default are always there', () => {
    const settings = SETTINGS.parse({});
    expectTypeOf(settings.port).toEqualTypeOf<number>();
    expectTypeOf(settings.slots).toEqualTypeOf<number | undefined>();
    expectTypeOf(settings.env).toEqualTypeOf<string[] | undefined>();
    expect(SETTINGS.nameOf('slots')).toBe('--slots (DS_SLOTS)');
  });

  it('refuses an old name that is read as another setting', () => {
    expect(() =>
      defineSettings({
        port: { flag: '--port <n>', env: 'DS_PORT', help: 'port', schema: integer },
        other: {
          flag: '--other <n>',
          env: 'DS_OTHER',
          help: 'other',
          schema: integer,
          aliases: [{ flag: '--port', env: 'DS_P' }],
        },
      }),
    ).toThrow('setting other: the old name --port (DS_P) is read as the setting port');
  });
});

describe('definedOnly', () => {
  it('drops the properties that are undefined, and keeps every other value', () => {
    expect(definedOnly({ a: 1, b: undefined, c: 0, d: '', e: null, f: false })).toEqual({
      a: 1,
      c: 0,
      d: '',
      e: null,
      f: false,
    });
    expect(Object.keys(definedOnly({ a: undefined }))).toEqual([]);
  });
});
