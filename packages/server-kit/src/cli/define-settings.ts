/**
 * One declarative table of a CLI's settings, and the one engine that reads it: each row gives
 * a flag, its environment variable, its default, its help and the zod schema of its text.
 * Both `mpd-orchestrator` and `mpd-worker` are built on it, so they read, check and refuse
 * settings the same way.
 */
import { redactUrl, redactUrlsIn } from '@mpd/contract/redact-url';
import { Command, Option } from 'commander';
import { z } from 'zod';

/** An old name of a setting: still read, listed in `--help` as deprecated. */
export interface SettingAlias {
  /** The old long flag, e.g. `--max-parallel`; it takes the same argument as the new one. */
  flag: string;
  /** The old environment variable, e.g. `MPD_MAX_PARALLEL`. */
  env: string;
}

/** One setting: a row of the table {@link defineSettings} takes. */
export interface SettingRow<Schema extends z.ZodTypeAny = z.ZodTypeAny> {
  /** The long flag and its argument, e.g. `--port <n>` (a value required) or `--open [bool]` (optional: the flag alone means `true`). */
  flag: string;
  /** The environment variable read when the flag is not given, e.g. `MPD_PORT`. */
  env: string;
  /** The text used when neither is given, checked like a given one. Without it the setting is absent then. */
  default?: string;
  /** The line of `--help` (commander adds the default and the variable). */
  help: string;
  /** Checks the text (the list of texts when `repeatable`) and converts it; its messages complete "must ...". */
  schema: Schema;
  /**
   * A secret: messages give its length (`a value of 20 characters`), never the value, and giving
   * it as a flag is warned about (see {@link SettingsDefinition.secretFlagsGiven}). @default false
   */
  secret?: boolean;
  /**
   * A URL (or a list of them): messages show it without its user name and password, query and
   * fragment (`http://***@host:8080/?…`, by `redactUrl`), also when it is no URL at all (an
   * invalid one is what they echo). Any other setting's text is shown with whatever follows a
   * URL in it masked that way (`redactUrlsIn`: `NAME=postgres://***@db`). @default false
   */
  url?: boolean;
  /**
   * Of a `secret` setting: whether a text given for it holds a secret value, e.g. `NAME=VALUE`
   * does, `NAME` alone (which passes on a variable of the process's own environment) does not.
   * @default every text does
   */
  holdsSecret?: (text: string) => boolean;
  /**
   * Each flag adds an entry (`--env A=1 --env B=2`); the variable gives one entry per non-blank
   * line. The schema then checks a list of texts. @default false
   */
  repeatable?: boolean;
  /** Old names still read; a new name given beside an old one wins. */
  aliases?: readonly SettingAlias[];
}

/** An old name a setting was given by: see {@link SettingsDefinition.oldNamesGiven}. */
export interface OldNameGiven {
  /** The setting's key in the table, e.g. `slots`. */
  key: string;
  /** The old name as messages name it, e.g. `--max-parallel (MPD_MAX_PARALLEL)`. */
  oldName: string;
  /** The setting's own name, e.g. `--slots (MPD_SLOTS)`. */
  name: string;
  /** One line for the user: `--max-parallel (MPD_MAX_PARALLEL) is deprecated; use --slots (MPD_SLOTS)`. */
  message: string;
}

/** A secret given as a flag: see {@link SettingsDefinition.secretFlagsGiven}. */
export interface SecretFlagGiven {
  /** The setting's key in the table, e.g. `joinToken`. */
  key: string;
  /** The flag it was given by, e.g. `--join-token`. */
  flag: string;
  /** The environment variable to give it by instead, e.g. `MPD_JOIN_TOKEN`. */
  env: string;
  /**
   * One line for the user, naming the flag and the variable, never the value:
   * `--join-token puts a secret on the command line, where ps, shell history and tools that echo
   * commands (pnpm, CI logs) show it; set MPD_JOIN_TOKEN instead`.
   */
  message: string;
}

/** A table of settings by key; the keys are the names the settings have in code. */
export type SettingRows = Readonly<Record<string, SettingRow>>;

type Simplify<T> = { [K in keyof T]: T[K] } & {};

/**
 * The checked settings of a table, every key present: those with a default always have a value,
 * the others are `undefined` when not given.
 */
export type SettingValues<Rows extends SettingRows> = Simplify<
  {
    -readonly [K in keyof Rows as Rows[K] extends { default: string } ? K : never]: z.output<Rows[K]['schema']>;
  } & {
    -readonly [K in keyof Rows as Rows[K] extends { default: string } ? never : K]?: z.output<Rows[K]['schema']>;
  }
>;

type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}`
  ? `${Head}${Capitalize<CamelCase<Tail>>}`
  : S;
/** Commander's attribute name of a flag: `--max-parallel <n>` → `maxParallel`. */
type AttributeOf<Flag extends string> = Flag extends `--${infer Name} ${string}`
  ? CamelCase<Name>
  : Flag extends `--${infer Name}`
    ? CamelCase<Name>
    : never;
type AliasNamesOf<Row> = Row extends { aliases: readonly (infer Alias)[] }
  ? Alias extends { flag: infer Flag extends string }
    ? AttributeOf<Flag>
    : never
  : never;
type TextOf<Row> = Row extends { repeatable: true } ? readonly string[] : string;

/**
 * The texts of settings as given, before checking: by key, or by an old name's attribute
 * (`maxParallel` for `--max-parallel`) when that is how it was given; a list for a repeatable one.
 */
export type RawSettings<Rows extends SettingRows> = { [K in keyof Rows]?: TextOf<Rows[K]> } & {
  [K in keyof Rows as AliasNamesOf<Rows[K]>]?: TextOf<Rows[K]>;
};

/** What the cross-setting checks of {@link defineSettings} get besides the settings. */
export interface SettingsCheckContext<Rows extends SettingRows> {
  /** Refuses the setting `key` with `message` ("must ..." or "needs ..."): throws the table's error. */
  fail(key: keyof Rows & string, message: string): never;
  /** How messages name a setting: `--port (MPD_PORT)`. */
  nameOf(key: keyof Rows & string): string;
}

/** Options of {@link defineSettings}: what the table's rows cannot say on their own. */
export interface DefineSettingsOptions<Rows extends SettingRows, Settings> {
  /**
   * Settings that need others: `[key, needed]` refuses `key` given without every one of
   * `needed`, e.g. `--tls-cert` without `--tls-key` ("needs --tls-key (MPD_TLS_KEY) too").
   * Checked in order, after each setting on its own.
   */
  needs?: readonly (readonly [keyof Rows & string, readonly (keyof Rows & string)[]])[];
  /** Checks across settings, after `needs`; refuses with `context.fail`. */
  check?: (values: SettingValues<Rows>, context: SettingsCheckContext<Rows>) => void;
  /**
   * Turns the checked settings into what `parse` returns, e.g. entries into a map of
   * variables (`env`: the environment `parse` was given).
   * @default the checked settings as they are
   */
  finish?: (values: SettingValues<Rows>, env: NodeJS.ProcessEnv) => Settings;
  /**
   * Makes the error thrown for a refused setting: `name` as messages name it, `message` the
   * whole message, `cause` the ZodError when the setting's schema refused it.
   * @default a plain `Error`
   */
  error?: (name: string, message: string, cause?: unknown) => Error;
}

/**
 * An unknown option as a message may name it: a long one without its `=value`
 * (`--join-tokn=SECRET` → `--join-tokn`), a short one by its first two characters (`-tSECRET`,
 * `-t=SECRET` → `-t`): what follows may be a secret, to be printed to neither a terminal nor a
 * CI log. Anything else as given. The settings' commands and `mpd`'s own usage error name an
 * unknown option by it.
 */
export function unknownOptionName(arg: string): string {
  if (arg.startsWith('--')) return arg.replace(/=[\s\S]*$/, '');
  return arg.startsWith('-') ? arg.slice(0, 2) : arg;
}

/**
 * A command that names an unknown option by {@link unknownOptionName}: commander's own message
 * (`unknown option '--join-tokn=SECRET'`) would print the value, and finds no similar flag to
 * suggest for it. Commander calls `unknownOption` (not in its typings) with the argument as
 * given; this passes on its name alone (the settings' tests check the message, so a commander
 * that renames it fails there).
 */
class SettingsCommand extends Command {
  unknownOption(flag: string): void {
    const unknownOption = (Command.prototype as unknown as { unknownOption(flag: string): void }).unknownOption;
    unknownOption.call(this, unknownOptionName(flag));
  }
}

/** A table of settings, ready to build its command line and to check what it was given. */
export interface SettingsDefinition<Rows extends SettingRows, Settings> {
  readonly rows: Rows;
  /** How messages name a setting: `--port (MPD_PORT)`. */
  nameOf(key: keyof Rows & string): string;
  /**
   * The command line: one option per row (each also reads its variable; the flag wins), then
   * one per old name, grouped in `--help` under "Deprecated (old names, still read):". Values
   * stay texts: {@link SettingsDefinition.parse} checks them. Excess arguments are refused.
   * A usage error (an unknown flag, an extra argument, a flag without its value) is one line,
   * `error: unknown option '--bogus'`, then `(NAME --help lists the flags)`, on stderr; an
   * unknown `--flag=value` is named without its value (it may be a secret: `--join-tokn=…`), a
   * short one by its first two characters (`-tSECRET` → `-t`), and
   * a similar flag is suggested (`(Did you mean --port?)`). Commander throws or exits (code
   * 1, its own) after printing it: the CLIs exit 2 (`EXIT_INVALID_SETTING`).
   */
  command(name: string, description: string): Command;
  /**
   * The texts a parsed `command` collected, each under the name it was given by: a flag
   * before a variable, a new name before an old one; the variable of a repeatable setting
   * split into its non-blank lines.
   */
  raw(command: Command): RawSettings<Rows>;
  /**
   * The old names (`aliases`) the settings were given by, in table order: by flag or variable
   * in a parsed `command`, by key in texts as given. An old name given beside the new one is
   * listed too (it is ignored, and still deprecated). Empty when only new names were used.
   */
  oldNamesGiven(input: Command | RawSettings<Rows>): OldNameGiven[];
  /**
   * The `secret` settings a parsed `command` was given by flag (by its own name or an old one)
   * with a secret value (`holdsSecret`), in table order: a command line shows in `ps`, in
   * shell history and in the logs of tools that echo it (pnpm does, as do many CI wrappers).
   * Their variables are the safe way and are never listed. Never holds a value.
   */
  secretFlagsGiven(command: Command): SecretFlagGiven[];
  /** `raw` with the default of every setting it lacks. */
  withDefaults(raw: RawSettings<Rows>): RawSettings<Rows>;
  /**
   * Checks the settings of a parsed command (defaults filled in by commander), or texts as
   * given (no defaults filled in: see {@link SettingsDefinition.withDefaults}): each setting
   * on its own in table order, then `needs`, then `check`; then `finish`.
   * @param env what `finish` reads variables from. @default process.env
   * @throws the table's `error` for the first setting refused, with the message
   *   `Invalid setting --port (MPD_PORT): must be an integer from 0 to 65535, got "abc"`
   *   (named by the old name when given by it; a secret's value shown as its length; a URL
   *   without its user name, password and query: see {@link SettingRow.url}).
   */
  parse(input: Command | RawSettings<Rows>, env?: NodeJS.ProcessEnv): Settings;
}

const DEPRECATED_GROUP = 'Deprecated (old names, still read):';

/**
 * A non-secret setting's text (or list of texts) as a message shows it: a `url` row's by
 * `redactUrl`, any other's by `redactUrlsIn` (a password or token in a URL never reaches a
 * terminal or a CI log; README "Security").
 */
const shownText = (row: SettingRow, text: unknown): unknown => {
  const redact = row.url ? redactUrl : redactUrlsIn;
  if (typeof text === 'string') return redact(text);
  return Array.isArray(text) ? text.map((entry: unknown) => (typeof entry === 'string' ? redact(entry) : entry)) : text;
};

/**
 * How many characters of a refused setting's (redacted) text its message echoes: a longer one
 * shows its first {@link SHOWN_TEXT_CHARS} and `…`, then its length (`got "aaa…" (100000
 * characters)`), so a pasted file or a runaway variable does not flood a terminal or CI log.
 */
const SHOWN_TEXT_CHARS = 200;

/** `shown` (what {@link shownText} gave) as JSON, each text cut to {@link SHOWN_TEXT_CHARS} and `…`, with its length then. */
const cappedJson = (shown: unknown): string => {
  const cap = (text: string): string => (text.length > SHOWN_TEXT_CHARS ? `${text.slice(0, SHOWN_TEXT_CHARS)}…` : text);
  if (typeof shown === 'string')
    return shown.length > SHOWN_TEXT_CHARS
      ? `${JSON.stringify(cap(shown))} (${shown.length} characters)`
      : JSON.stringify(shown);
  return JSON.stringify(
    Array.isArray(shown) ? shown.map((entry) => (typeof entry === 'string' ? cap(entry) : entry)) : shown,
  );
};

/** `--port (MPD_PORT)`. */
const nameOfFlag = (flag: string, env: string): string => `${flag.split(' ')[0]} (${env})`;

/** Commander's attribute name of a long flag: `--max-parallel <n>` → `maxParallel`. */
const attributeOf = (flag: string): string =>
  flag
    .split(' ')[0]!
    .replace(/^--/, '')
    .replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());

/**
 * Defines a CLI's settings from one table: the command line (`command`), and one check of
 * everything given (`parse`) with one message format. Adding a setting is adding a row.
 *
 * ```ts
 * const settings = defineSettings({
 *   port: { flag: '--port <n>', env: 'MPD_PORT', default: '8080', help: 'port to listen on', schema: portText },
 *   slots: { flag: '--slots <n>', env: 'MPD_SLOTS', help: 'modules at once', schema: slotsText,
 *            aliases: [{ flag: '--max-parallel', env: 'MPD_MAX_PARALLEL' }] },
 * });
 * const command = settings.command('mpd-worker', 'Run an mpd worker.').parse();
 * const { port, slots } = settings.parse(command); // number, number | undefined
 * ```
 *
 * @throws Error at definition when an old name would be read as another setting (`--port` as `port`).
 */
export function defineSettings<const Rows extends SettingRows, Settings = SettingValues<Rows>>(
  rows: Rows,
  options: DefineSettingsOptions<Rows, Settings> = {},
): SettingsDefinition<Rows, Settings> {
  type Key = keyof Rows & string;
  const entries = Object.entries(rows) as [Key, SettingRow][];
  // Each setting's spellings: its own first, then its old names. `option` is commander's
  // attribute of the flag, `raw` the key of the texts given by it, `name` how messages name it.
  const spellings = new Map(
    entries.map(([key, row]) => [
      key,
      [
        { option: attributeOf(row.flag), raw: key as string, name: nameOfFlag(row.flag, row.env) },
        ...(row.aliases ?? []).map((alias) => ({
          option: attributeOf(alias.flag),
          raw: attributeOf(alias.flag),
          name: nameOfFlag(alias.flag, alias.env),
        })),
      ],
    ]),
  );
  for (const [key, [, ...old]] of spellings) {
    const taken = old.find((spelling) => spelling.raw in rows);
    if (taken) throw new Error(`setting ${key}: the old name ${taken.name} is read as the setting ${taken.raw}`);
  }
  const nameOf = (key: Key): string => spellings.get(key)![0]!.name;
  // One zod pass over every setting; an absent one is left out (a default was filled in before).
  const schema = z.object(Object.fromEntries(entries.map(([key, row]) => [key, row.schema.optional()])));
  const makeError =
    options.error ??
    ((_name: string, message: string, cause?: unknown) =>
      new Error(message, cause === undefined ? undefined : { cause }));

  const definition: SettingsDefinition<Rows, Settings> = {
    rows,
    nameOf,

    command(name, description) {
      const command = new SettingsCommand(name)
        .description(description)
        .helpOption('-h, --help', 'show this help')
        .allowExcessArguments(false)
        // One line after a usage error: the whole help would bury the error.
        .showHelpAfterError(`(${name} --help lists the flags)`);
      const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
      for (const [, row] of entries) {
        const [flag, argument = ''] = row.flag.split(' ');
        const option = new Option(row.flag, row.help).env(row.env);
        if (row.default !== undefined) option.default(row.default);
        if (row.repeatable) option.argParser(collect);
        command.addOption(option);
        for (const alias of row.aliases ?? []) {
          const old = new Option(`${alias.flag} ${argument}`, `the old name of ${flag}`)
            .env(alias.env)
            .helpGroup(DEPRECATED_GROUP);
          if (row.repeatable) old.argParser(collect);
          command.addOption(old);
        }
      }
      return command;
    },

    raw(command) {
      const raw: Record<string, string | readonly string[]> = {};
      for (const [key, row] of entries) {
        const names = spellings.get(key)!;
        const source = (spelling: { option: string }) => command.getOptionValueSource(spelling.option);
        const given =
          names.find((spelling) => source(spelling) === 'cli') ??
          names.find((spelling) => source(spelling) === 'env') ??
          names[0]!;
        let value = command.getOptionValue(given.option) as string | string[] | undefined;
        if (value === undefined) continue;
        if (row.repeatable && source(given) === 'env') {
          value = (value as string[]).flatMap((text) => text.split(/\r?\n/)).filter((line) => line.trim() !== '');
        }
        raw[given.raw] = value;
      }
      return raw as RawSettings<Rows>;
    },

    oldNamesGiven(input) {
      const given = (spelling: { option: string; raw: string }): boolean => {
        if (!(input instanceof Command)) return (input as Record<string, unknown>)[spelling.raw] !== undefined;
        const source = input.getOptionValueSource(spelling.option);
        return source === 'cli' || source === 'env';
      };
      return entries.flatMap(([key]) => {
        const [own, ...old] = spellings.get(key)!;
        return old.filter(given).map((spelling) => ({
          key,
          oldName: spelling.name,
          name: own!.name,
          message: `${spelling.name} is deprecated; use ${own!.name}`,
        }));
      });
    },

    secretFlagsGiven(command) {
      return entries.flatMap(([key, row]) => {
        if (!row.secret) return [];
        const holdsSecret = row.holdsSecret ?? (() => true);
        return spellings
          .get(key)!
          .filter((spelling) => {
            if (command.getOptionValueSource(spelling.option) !== 'cli') return false;
            const value = command.getOptionValue(spelling.option) as string | string[] | undefined;
            return (Array.isArray(value) ? value : [value ?? '']).some(holdsSecret);
          })
          .map((spelling) => {
            const flag = spelling.name.split(' ')[0]!;
            const instead = row.repeatable ? `${row.env} instead (one entry per line)` : `${row.env} instead`;
            return {
              key,
              flag,
              env: row.env,
              message: `${flag} puts a secret on the command line, where ps, shell history and tools that echo commands (pnpm, CI logs) show it; set ${instead}`,
            };
          });
      });
    },

    withDefaults(raw) {
      const filled: Record<string, unknown> = { ...raw };
      for (const [key, row] of entries) {
        const given = spellings.get(key)!.some((spelling) => filled[spelling.raw] !== undefined);
        if (!given && row.default !== undefined) filled[key] = row.default;
      }
      return filled as RawSettings<Rows>;
    },

    parse(input, env = process.env) {
      const raw = (input instanceof Command ? definition.raw(input) : input) as Record<string, unknown>;
      // Each setting under the name it was given by: its own, else the first old one given.
      // Every key is there, undefined when not given: the checked settings list every setting.
      const texts: Record<string, unknown> = {};
      const names: Record<string, string> = {};
      for (const [key] of entries) {
        const given = spellings.get(key)!.find((spelling) => raw[spelling.raw] !== undefined);
        texts[key] = given === undefined ? undefined : raw[given.raw];
        if (given) names[key] = given.name;
      }
      const fail = (key: Key, message: string, index?: PropertyKey, cause?: unknown): never => {
        const row = rows[key]!;
        // A repeatable setting's issue names its entry; a list made of one text (`a,b`) shows that text.
        const text =
          row.repeatable && typeof index === 'number' ? (texts[key] as unknown[] | undefined)?.[index] : texts[key];
        const shown = row.secret
          ? `${row.repeatable ? 'an entry' : 'a value'} of ${String(text ?? '').length} characters`
          : cappedJson(shownText(row, text ?? ''));
        const name = names[key] ?? nameOf(key);
        throw makeError(name, `Invalid setting ${name}: ${message}, got ${shown}`, cause);
      };

      const result = schema.safeParse(texts);
      if (!result.success) {
        const issue = result.error.issues[0]!;
        return fail(issue.path[0] as Key, issue.message, issue.path[1], result.error);
      }
      const values = result.data as SettingValues<Rows>;
      const given = values as Record<string, unknown>;
      for (const [key, needed] of options.needs ?? []) {
        const missing = needed.filter((other) => given[other] === undefined);
        if (given[key] !== undefined && missing.length > 0) {
          fail(key, `needs ${missing.map(nameOf).join(' and ')} too`);
        }
      }
      options.check?.(values, { fail: (key, message) => fail(key, message), nameOf });
      return options.finish ? options.finish(values, env) : (values as unknown as Settings);
    },
  };
  return definition;
}

/**
 * `values` without its properties that are `undefined`: for handing settings on as options,
 * so that an absent setting leaves the option's default in place even where options are
 * resolved as `{ ...defaults, ...options }`.
 */
export function definedOnly<T extends object>(values: T): T {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as T;
}
