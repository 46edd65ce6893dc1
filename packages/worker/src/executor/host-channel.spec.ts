import { describe, expect, it } from 'vitest';
import { MessageLines, messageLine } from './host-channel.js';

/** Feeds `bytes` to a fresh MessageLines in reads of `size` bytes through one reused buffer, as a host's channel reads. */
function read(bytes: Buffer, size: number): { messages: unknown[]; broken: unknown[] } {
  const messages: unknown[] = [];
  const broken: unknown[] = [];
  const lines = new MessageLines(
    (message) => messages.push(message),
    (error) => broken.push(error),
  );
  const buffer = Buffer.alloc(size);
  for (let at = 0; at < bytes.length; at += size) {
    const length = bytes.copy(buffer, 0, at, Math.min(at + size, bytes.length));
    lines.push(buffer, length);
    buffer.fill(0xff); // the next read overwrites what this one held
  }
  return { messages, broken };
}

describe('the host channel framing (newline-delimited JSON)', () => {
  const sent = [
    { type: 'execute', executionId: 'a', params: { text: 'line 1\nline 2\r\n\u0000 é € 😀' } },
    { type: 'done', executionId: 'a', ok: true, resultText: '"\\u2028 and \u2028"' },
    { type: 'logs', executionId: 'b', lines: [{ level: 'info', message: 'x'.repeat(70_000) }] },
    { type: 'ready' },
  ];
  const bytes = Buffer.from(sent.map(messageLine).join(''));

  it('one line per message: the only newline a message holds is its last byte', () => {
    for (const message of sent) {
      const line = messageLine(message);
      expect(line.indexOf('\n')).toBe(line.length - 1);
    }
  });

  it.each([1, 2, 3, 7, 64, 65_536, bytes.length])(
    'gives every message whole and in order, whatever the reads cut (%i bytes a read, UTF-8 sequences cut between reads, the read buffer reused)',
    (size) => {
      expect(read(bytes, size)).toEqual({ messages: sent, broken: [] });
    },
  );

  it('a message whose end never came (its writer died mid-message) is not given', () => {
    const cut = Buffer.concat([
      Buffer.from(messageLine({ type: 'ready' })),
      Buffer.from('{"type":"done","executionId":"a","ok":true,"resultText":"1"}'),
    ]);
    expect(read(cut, 16)).toEqual({ messages: [{ type: 'ready' }], broken: [] });
  });

  it('a line that is not JSON is told of, and is no message; the lines around it are read', () => {
    const { messages, broken } = read(Buffer.from(`{"type":"ready"}\nnot a message\n{"type":"ready"}\n`), 5);
    expect(messages).toEqual([{ type: 'ready' }, { type: 'ready' }]);
    expect(broken).toEqual([expect.any(SyntaxError)]);
  });
});
