/** HTTP/1.1 spoken by hand, for requests no HTTP client sends (a malformed `Content-Length`). */
import { connect } from 'node:net';

/** A raw HTTP/1.1 answer: the status, the head (lowercased: status line and headers) and the body as text. */
export interface RawHttpAnswer {
  status: number;
  head: string;
  body: string;
}

/**
 * Writes `raw` (a request as bytes, e.g. `POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n`) to
 * 127.0.0.1:`port` on a connection of its own, and resolves to what came back once the server
 * closed the connection (the request should make it close: `Connection: close`, or an answer
 * that ends it).
 * @throws the socket's error (a reset before any answer, a refused connection)
 */
export function rawHttpExchange(port: number, raw: string): Promise<RawHttpAnswer> {
  return new Promise<RawHttpAnswer>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(raw));
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('error', reject);
    socket.on('close', () => {
      const end = answer.indexOf('\r\n\r\n');
      const head = end === -1 ? answer : answer.slice(0, end);
      resolve({
        status: Number(head.split(' ')[1]),
        head: head.toLowerCase(),
        body: end === -1 ? '' : answer.slice(end + 4),
      });
    });
  });
}

/**
 * A request node's HTTP parser refuses before any app sees it: a POST of `{}` to `path` whose
 * `Content-Length` is `abc`, on a connection of its own (for {@link rawHttpExchange}). Both servers
 * answer it 400 with {@link MALFORMED_CONTENT_LENGTH_ANSWER} (server-kit's `clientError` handler).
 */
export function malformedContentLength(path: string): string {
  return `POST ${path} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: abc\r\n\r\n{}`;
}

/** The JSON body both servers answer {@link malformedContentLength} with (status 400): the contract's error naming the header. */
export const MALFORMED_CONTENT_LENGTH_ANSWER = {
  success: false,
  errorMessage: 'Malformed request: Invalid character in Content-Length (HPE_INVALID_CONTENT_LENGTH)',
  code: 'ValidationFailed',
  issues: [{ field: 'headers.content-length', message: 'Invalid character in Content-Length' }],
} as const;
