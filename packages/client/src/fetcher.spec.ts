import { describe, expect, it } from 'vitest';
import { transportCode } from './fetcher.js';

describe('transportCode: whether a failure proves no request reached the server', () => {
  it.each(['EHOSTUNREACH', 'ENETUNREACH', 'ECONNREFUSED'])(
    '%s from read on an established connection is ConnectionLost (the request may have been served)',
    (code) => {
      expect(transportCode({ code, syscall: 'read' })).toBe('ConnectionLost');
      expect(transportCode({ code, syscall: 'write' })).toBe('ConnectionLost');
    },
  );

  it.each(['EHOSTUNREACH', 'ENETUNREACH', 'ECONNREFUSED'])(
    '%s from connect, or without a syscall, is Unreachable (no connection was made)',
    (code) => {
      expect(transportCode({ code, syscall: 'connect' })).toBe('Unreachable');
      expect(transportCode({ code })).toBe('Unreachable');
    },
  );

  it('takes undici’s connect timeout and a failed lookup as Unreachable, a reset as ConnectionLost', () => {
    expect(transportCode({ code: 'UND_ERR_CONNECT_TIMEOUT' })).toBe('Unreachable');
    expect(transportCode({ code: 'ENOTFOUND', syscall: 'getaddrinfo' })).toBe('Unreachable');
    expect(transportCode({ code: 'ECONNRESET', syscall: 'read' })).toBe('ConnectionLost');
    expect(transportCode({ code: 'UND_ERR_SOCKET' })).toBe('ConnectionLost');
  });
});
