import { spawn } from 'node:child_process';
import { type AddressInfo, connect, createServer, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { MessageLines, messageLine, writeLine } from './host-channel.js';
import { signalGroup } from './process-group.js';

const WORKER_ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WRITER = fileURLToPath(new URL('../../test/fixtures/channel-writer.ts', import.meta.url));

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

describe('writeLine: one write(2) of its own when nothing is queued, in order with the socket', () => {
  it('a child writing 3,000 lines (7 MB) on a pipe read only once it wrote them all: every line arrives whole, in order, though the pipe filled (EAGAIN)', async () => {
    const count = 3_000;
    const child = spawn(process.execPath, ['--import', 'tsx', WRITER], {
      cwd: WORKER_ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'inherit', 'pipe'],
      env: { ...process.env, XMPD_LINES: String(count) },
    });
    try {
      const [stdout, channel] = [child.stdio[1]!, child.stdio[3]! as Readable];
      channel.pause();
      const report = await new Promise<string>((resolve, reject) => {
        let text = '';
        stdout.setEncoding('utf8').on('data', (chunk: string) => {
          text += chunk;
          if (text.includes('\n')) resolve(text);
        });
        child.once('exit', (code) => reject(new Error(`the writer exited (${code}) before it wrote every line`)));
      });
      const seen = JSON.parse(report) as { direct: number; partial: number; refused: number };
      // The pipe filled before the child wrote them all: what it did not take went through the socket's queue.
      expect(seen.refused).toBeGreaterThan(0);
      const received: Buffer[] = [];
      channel.on('data', (chunk: Buffer) => received.push(chunk));
      channel.resume();
      await new Promise((resolve) => channel.once('end', resolve));
      const messages: { index: number; text: string }[] = [];
      const broken: unknown[] = [];
      new MessageLines<{ index: number; text: string }>(
        (message) => messages.push(message),
        (error) => broken.push(error),
      ).push(Buffer.concat(received));
      expect(broken).toEqual([]);
      // As the writer makes them (test/fixtures/channel-writer.ts).
      const expected = Array.from({ length: count }, (_, index) => ({
        index,
        text: index % 10 === 9 ? 'x'.repeat(20_000) : `line ${index} é € 😀 ${'y'.repeat(index % 700)}`,
      }));
      expect(messages.length).toBe(count);
      expect(messages).toEqual(expected);
    } finally {
      if (child.exitCode === null && child.signalCode === null) signalGroup(child.pid!, 'SIGKILL');
    }
  }, 60_000);

  it.each([
    ['wrote it all', (text: string) => Buffer.byteLength(text)],
    ['took 5 bytes (inside a character)', () => 5],
    [
      'refused it (EAGAIN)',
      (): number => {
        throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
      },
    ],
  ])('the descriptor %s: the rest goes through the socket, and the bytes are the line', async (_, take) => {
    const { socket, received, close } = await connectedPair();
    try {
      const line = messageLine({ text: 'é € 😀 and more' });
      let direct = Buffer.alloc(0);
      writeLine(socket, -1, line, (_fd, text) => {
        const written = take(text);
        direct = Buffer.from(text).subarray(0, written);
        return written;
      });
      socket.end();
      expect(Buffer.concat([direct, await received]).toString()).toBe(line);
    } finally {
      close();
    }
  });

  it('while the socket has bytes queued, a line goes through it (the direct write would pass them)', async () => {
    const { socket, received, close } = await connectedPair();
    try {
      socket.cork();
      socket.write('queued\n');
      let direct = 0;
      writeLine(socket, -1, 'after\n', () => direct++);
      socket.uncork();
      socket.end();
      expect(direct).toBe(0);
      expect((await received).toString()).toBe('queued\nafter\n');
    } finally {
      close();
    }
  });

  it('an ended socket (end() called, its shutdown not yet made) is not written on directly: it refuses the line with an error, as before', async () => {
    const { socket, received, close } = await connectedPair();
    try {
      const refused = new Promise<Error>((resolve) => socket.once('error', resolve));
      socket.write('before\n');
      socket.end();
      let direct = 0;
      writeLine(socket, -1, 'late\n', () => direct++);
      expect(direct).toBe(0);
      expect((await refused).message).toMatch(/write after end/);
      expect((await received).toString()).toBe('before\n');
    } finally {
      close();
    }
  });

  it('a destroyed socket is not written on directly (its descriptor number may be another file by now)', async () => {
    const { socket, close } = await connectedPair();
    try {
      socket.on('error', () => undefined);
      socket.destroy();
      let direct = 0;
      writeLine(socket, -1, 'late\n', () => direct++);
      expect(direct).toBe(0);
    } finally {
      close();
    }
  });
});

/** A real TCP connection on 127.0.0.1: the client's socket, and every byte the server side received until it ended. */
async function connectedPair(): Promise<{ socket: Socket; received: Promise<Buffer>; close: () => void }> {
  const server = createServer();
  let received!: Promise<Buffer>;
  const accepted = new Promise<void>((resolve) =>
    server.once('connection', (peer) => {
      const chunks: Buffer[] = [];
      peer.on('data', (chunk: Buffer) => chunks.push(chunk));
      received = new Promise((done) => peer.once('end', () => done(Buffer.concat(chunks))));
      resolve();
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
  await Promise.all([new Promise((resolve) => socket.once('connect', resolve)), accepted]);
  return {
    socket,
    received,
    close: () => {
      socket.destroy();
      server.close();
    },
  };
}
