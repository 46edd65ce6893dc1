import type { buildConnector } from 'undici';
import type { ClientOptions } from './client-options.js';
import { loadedUndici } from './undici.js';

/**
 * The {@link MpdClientError.errno} of a call whose connection {@link ClientOptions.resolveHost}
 * refused (without a network error code of its own): nothing was sent.
 */
export const ADDRESS_REFUSED = 'MPD_ADDRESS_REFUSED';

/** Connect errors after which the next address of the host is tried: nothing listens or routes there. */
const NEXT_ADDRESS = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', 'EAFNOSUPPORT']);

/**
 * undici's connector (`buildConnector(options)`, with `options` as undici's own `connect`
 * options: TLS, `timeout` per address), connecting only to the addresses `resolveHost` gives for
 * the URL's host, in order, the next one when one refuses. The host stays the URL's for TLS (the
 * server name and the certificate's check) and for the `Host` header. When `resolveHost` throws,
 * no connection is made: an error with a `code` (a resolver's `ENOTFOUND`) fails the call as
 * that network error, any other as {@link ADDRESS_REFUSED}.
 */
export function checkedConnector(
  options: buildConnector.BuildOptions,
  resolveHost: NonNullable<ClientOptions['resolveHost']>,
): buildConnector.connector {
  // Built at the first connection (undici is loaded by then: an agent is connecting), so that
  // making the options of a client loads no undici (undici.ts).
  let built: buildConnector.connector | undefined;
  const connect: buildConnector.connector = (...args) => (built ??= loadedUndici().buildConnector(options))(...args);
  return (target, callback) => {
    const port = Number(target.port) || (target.protocol === 'https:' ? 443 : 80);
    const tryFrom = (addresses: readonly string[], index: number): void => {
      connect({ ...target, hostname: addresses[index]! }, (...result) => {
        const [error] = result;
        const code = (error as { code?: string } | null)?.code;
        if (error && index + 1 < addresses.length && code !== undefined && NEXT_ADDRESS.has(code)) {
          tryFrom(addresses, index + 1);
        } else {
          callback(...result);
        }
      });
    };
    resolveHost(target.hostname, port).then(
      (addresses) => {
        if (addresses.length > 0) tryFrom(addresses, 0);
        else callback(refusal(new Error(`${target.hostname} has no address to connect to`)), null);
      },
      (error: unknown) => callback(refusal(error), null),
    );
  };
}

function refusal(error: unknown): Error {
  if (error instanceof Error && (error as { code?: unknown }).code !== undefined) return error;
  const message = error instanceof Error ? error.message : String(error);
  return Object.assign(new Error(message, { cause: error }), { code: ADDRESS_REFUSED });
}
