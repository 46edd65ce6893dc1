import { describe, expect, it } from 'vitest';
import {
  bodyLimitText,
  commaSeparatedText,
  hostText,
  integerText,
  logLevelText,
  parseSize,
  pathText,
  portText,
  sizeText,
  sizeTextOf,
  tokenText,
} from './setting-schemas.js';

/** The first message a schema refuses `text` with. */
const messageOf = (schema: { safeParse(text: string): { error?: { issues: { message: string }[] } } }, text: string) =>
  schema.safeParse(text).error?.issues[0]?.message;

describe('setting schemas', () => {
  it('commaSeparatedText: trimmed entries, empty ones dropped', () => {
    expect(commaSeparatedText.parse(' a, ,b ,c,')).toEqual(['a', 'b', 'c']);
    expect(commaSeparatedText.parse(' , ')).toEqual([]);
  });

  it('tokenText: 16 to 256 printable characters without spaces', () => {
    expect(tokenText.safeParse('x'.repeat(16)).success).toBe(true);
    expect(tokenText.safeParse('x'.repeat(256)).success).toBe(true);
    for (const bad of ['x'.repeat(15), 'x'.repeat(257), `${'x'.repeat(16)} y`, `${'x'.repeat(16)}é`]) {
      const result = tokenText.safeParse(bad);
      expect(result.success).toBe(false);
      expect(result.error?.issues[0]?.message).toBe('must be 16 to 256 printable characters without spaces');
    }
  });

  it('sizeText: a size with a unit, in bytes (binary units, as express reads --body-limit), above 0', () => {
    expect(sizeText.parse(' 16mb ')).toBe(16 * 1024 * 1024);
    expect(sizeText.parse('1.5KB')).toBe(1536);
    expect(messageOf(sizeText, '0mb')).toBe('must be a size above 0, such as 512kb, 1mb or 100mb');
    expect(messageOf(sizeText, '16')).toBe('must be a size in b, kb, mb or gb, such as 512kb, 1mb or 100mb');
    expect(sizeTextOf(16 * 1024 * 1024)).toBe('16mb');
    expect(sizeText.parse(sizeTextOf(100 * 1024 * 1024))).toBe(parseSize('100mb'));
    expect(() => parseSize('lots')).toThrow(TypeError);
  });

  it('bodyLimitText: a size with a unit, trimmed', () => {
    expect(bodyLimitText.parse(' 512kb ')).toBe('512kb');
    expect(bodyLimitText.parse('1.5MB')).toBe('1.5MB');
    expect(bodyLimitText.safeParse('100').success).toBe(false);
    expect(bodyLimitText.safeParse('lots').error?.issues[0]?.message).toBe(
      'must be a size in b, kb, mb or gb, such as 512kb, 1mb or 100mb',
    );
  });

  it('integerText: digits only, within the bounds, trimmed', () => {
    const slots = integerText(1, 1024);
    expect(slots.parse('1')).toBe(1);
    expect(slots.parse(' 1024 ')).toBe(1024);
    expect(slots.parse('007')).toBe(7);
    for (const bad of ['0', '1025', '-1', '+3', '2.5', '1e3', '', ' ', 'four', '99999999999999999999']) {
      expect(messageOf(slots, bad), bad).toBe('must be an integer from 1 to 1024');
    }
  });

  it('portText: 0 to 65535, trimmed', () => {
    expect(portText.parse('0')).toBe(0);
    expect(portText.parse(' 80')).toBe(80);
    expect(portText.parse('65535')).toBe(65_535);
    expect(messageOf(portText, '65536')).toBe('must be an integer from 0 to 65535');
  });

  it('hostText: trimmed, not empty, no spaces inside', () => {
    expect(hostText.parse(' 127.0.0.1 ')).toBe('127.0.0.1');
    expect(hostText.parse('::')).toBe('::');
    expect(messageOf(hostText, ' ')).toBe('must not be empty');
    expect(messageOf(hostText, '')).toBe('must not be empty');
    expect(messageOf(hostText, 'a b')).toBe('must be a host name or IP address without spaces');
  });

  it('pathText: trimmed, not empty, with the message it is given', () => {
    expect(pathText().parse(' ca.crt ')).toBe('ca.crt');
    expect(messageOf(pathText(), '  ')).toBe('must be a file path');
    expect(messageOf(pathText('must be a directory path, not empty'), '')).toBe('must be a directory path, not empty');
  });

  it('logLevelText: one of the levels', () => {
    expect(logLevelText.parse('silent')).toBe('silent');
    expect(messageOf(logLevelText, 'loud')).toBe('must be one of fatal, error, warn, info, debug, trace, silent');
  });
});
