import { describe, expect, it } from 'vitest';
import { MessageLines, messageLine } from './host-channel.js';

/** Feeds `bytes` to a fresh MessageLines in reads of `size` bytes through one reused buffer, as a host's channel reads. */
function read(
  bytes: Buffer,
  size: number,
  maxLineBytes?: number,
  onMessage: (message: unknown) => void = () => undefined,
): { messages: unknown[]; broken: unknown[] } {
  const messages: unknown[] = [];
  const broken: unknown[] = [];
  const lines = new MessageLines(
    (message) => {
      messages.push(message);
      onMessage(message);
    },
    (error) => broken.push(error),
    maxLineBytes,
  );
  const buffer = Buffer.alloc(size);
  for (let at = 0; at < bytes.length; at += size) {
    const length = bytes.copy(buffer, 0, at, Math.min(at + size, bytes.length));
    lines.push(buffer, length);
    buffer.fill(0x0a); // the next read overwrites what this one held (newlines: none is a line's end)
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

  it('a line that is not JSON breaks the channel, once: it is no message, and no line after it is read', () => {
    const { messages, broken } = read(Buffer.from(`{"type":"ready"}\nnot a message\n{"type":"ready"}\n`), 5);
    expect(messages).toEqual([{ type: 'ready' }]);
    expect(broken).toEqual([expect.any(SyntaxError)]);
  });

  it('a message its handler throws at breaks the channel (not the process), once; no line after it is read', () => {
    const refused = new TypeError('null is not a message');
    const { messages, broken } = read(Buffer.from('{"type":"ready"}\nnull\n{"type":"ready"}\n'), 64, undefined, (m) => {
      if (m === null) throw refused;
    });
    expect(messages).toEqual([{ type: 'ready' }, null]);
    expect(broken).toEqual([refused]);
  });

  describe('the line limit', () => {
    const line = (bytes: number) => `"${'x'.repeat(bytes - 2)}"\n`; // a JSON string of `bytes` bytes and its newline

    it.each([1, 7, 64, 1_000])(
      'a line of the limit is a message; one byte more breaks the channel, naming the limit (%i bytes a read)',
      (size) => {
        expect(read(Buffer.from(line(100) + line(100)), size, 100)).toEqual({
          messages: ['x'.repeat(98), 'x'.repeat(98)],
          broken: [],
        });
        const over = read(Buffer.from(line(100) + line(101) + line(10)), size, 100);
        expect(over.messages).toEqual(['x'.repeat(98)]);
        expect(over.broken).toEqual([new Error("a line longer than 100 bytes (the channel's line limit)")]);
      },
    );

    it('a line without a newline is not buffered past the limit: the channel breaks as it passes it, before its end, and keeps nothing', () => {
      const broken: unknown[] = [];
      const lines = new MessageLines(
        () => undefined,
        (error) => broken.push(error),
        1_000,
      );
      const chunk = Buffer.alloc(300, 0x61);
      for (let i = 0; i < 3; i++) lines.push(chunk);
      expect(broken).toEqual([]);
      lines.push(chunk);
      expect(broken).toEqual([new Error("a line longer than 1000 bytes (the channel's line limit)")]);
      for (let i = 0; i < 10; i++) lines.push(chunk);
      lines.push(Buffer.from('\n"late"\n'));
      expect(broken).toHaveLength(1);
      expect((lines as unknown as { pendingBytes: number }).pendingBytes).toBe(0);
    });
  });
});
