import { describe, expect, it } from 'vitest';
import { bodyLimitText, commaSeparatedText, tokenText } from './setting-schemas.js';

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

  it('bodyLimitText: a size with a unit, trimmed', () => {
    expect(bodyLimitText.parse(' 512kb ')).toBe('512kb');
    expect(bodyLimitText.parse('1.5MB')).toBe('1.5MB');
    expect(bodyLimitText.safeParse('100').success).toBe(false);
    expect(bodyLimitText.safeParse('lots').error?.issues[0]?.message).toBe(
      'must be a size such as 512kb, 1mb or 100mb',
    );
  });
});
