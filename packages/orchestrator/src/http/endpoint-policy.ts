import { lookup } from 'node:dns/promises';
import { endpointOrigin } from '@mpd/contract/endpoint-origin';
import { redactUrlsIn } from '@mpd/contract/redact-url';
import { OrchestratorConfigError } from '../errors.js';
import {
  inRange,
  type IpAddress,
  isThisMachine,
  parseAddress,
  parseRange,
  refusedAddressReason,
  sameAddress,
} from './endpoint-address.js';

/**
 * Resolves a host name to the addresses a connection to it may go to (IPv4 dotted decimal or
 * IPv6), in the order to try them. Rejects when the name does not resolve (with the resolver's
 * `code`, such as `ENOTFOUND`).
 */
export type HostResolver = (hostname: string) => Promise<readonly string[]>;

/** The system's resolver, as Node's `net.connect` uses it (`getaddrinfo`: `/etc/hosts`, then DNS), in its order. */
export const systemResolver: HostResolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((entry) => entry.address);

/**
 * How long a registration waits for its endpoint's name to resolve, in ms, when an address-range
 * allow-list needs its addresses (see {@link WorkerEndpointPolicy.check}). A name that does not
 * resolve by then is not known to be in a range, and is refused.
 */
export const REGISTRATION_RESOLVE_WAIT_MS = 2_000;

/** Where the orchestrator listens: an address (`0.0.0.0` or `::` for every address of the machine) and a port. */
export interface OwnListener {
  readonly host: string;
  readonly port: number;
}

/** An endpoint refused by the policy, and why ("a link-local address", "the orchestrator's own address", …). */
export interface EndpointRefusal {
  readonly reason: string;
}

/**
 * The addresses of `localhost` and `*.localhost`, which are loopback by definition (RFC 6761,
 * section 6.3): known without asking any resolver.
 */
const LOCALHOST_ADDRESSES: readonly string[] = ['127.0.0.1', '::1'];

/**
 * The addresses of `hostname` known without asking a resolver: itself for an IP address, the
 * loopback addresses for `localhost` and `*.localhost`; undefined for any other name.
 */
function knownAddresses(hostname: string): readonly string[] | undefined {
  if (parseAddress(hostname)) return [hostname];
  const lower = hostname.toLowerCase().replace(/\.$/, '');
  return lower === 'localhost' || lower.endsWith('.localhost') ? LOCALHOST_ADDRESSES : undefined;
}

/** Options of {@link WorkerEndpointPolicy}. */
export interface WorkerEndpointPolicyOptions {
  /**
   * The orchestrator's `allowedWorkerHosts`: names (`worker1`), `*.suffix` patterns, addresses
   * (`10.0.0.7`, `::1`) and address ranges (`10.0.0.0/8`, `fd00::/8`). Given, an endpoint is
   * allowed when its host name matches a name or pattern, or when every address it connects to
   * is one of the addresses or in one of the ranges.
   * @default undefined: any host, but the refused addresses
   */
  allowedWorkerHosts?: readonly string[] | undefined;
  /**
   * How host names are resolved: at each connection to a worker, and at registration where an
   * address-range allow-list needs a name's addresses.
   * @default {@link systemResolver}
   */
  resolveHost?: HostResolver | undefined;
}

/** An entry of the allow-list, parsed once. */
type AllowEntry =
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'suffix'; readonly suffix: string }
  | { readonly kind: 'range'; readonly range: [IpAddress, number] };

/**
 * Which worker endpoints the orchestrator registers and connects to (issue 11, case 5: an
 * endpoint is a way into the orchestrator's network, SSRF). Refused always: an address no worker
 * can be at ({@link refusedAddressReason}: link-local and metadata addresses, multicast,
 * unspecified, broadcast) and the orchestrator's own listening address and port. With
 * `allowedWorkerHosts`, only the hosts it names. A name is resolved and every address checked
 * at each connection ({@link addressesFor}), whose addresses are the ones connected to: a name
 * that resolves to a refused address, then or after registration, is refused at dispatch, before
 * anything is sent. At registration ({@link check}) the orchestrator resolves a name only where an
 * address-range allow-list needs its addresses: it asks no resolver about a worker it may never
 * connect to (and its tests ask none about made-up names).
 */
export class WorkerEndpointPolicy {
  readonly #allowed: readonly AllowEntry[] | undefined;
  readonly #resolve: HostResolver;
  readonly #listeners: OwnListener[] = [];

  /** @throws OrchestratorConfigError (`InvalidSetting`, `allowedWorkerHosts`) for an entry that is no name, address or range. */
  constructor(options: WorkerEndpointPolicyOptions = {}) {
    const { allowedWorkerHosts } = options;
    this.#allowed =
      allowedWorkerHosts && allowedWorkerHosts.length > 0 ? allowedWorkerHosts.map(parseAllowEntry) : undefined;
    this.#resolve = options.resolveHost ?? systemResolver;
  }

  /**
   * The orchestrator listens at `listener` from now on: endpoints there are refused (a worker
   * that is the orchestrator would take modules and fail every one). `0.0.0.0` or `::` stands
   * for every address of this machine.
   */
  addOwnListener(listener: OwnListener): void {
    this.#listeners.push({ host: listener.host, port: listener.port });
  }

  /**
   * Checks an endpoint a worker registers: an address as written; `localhost` as its loopback
   * addresses; another name by the allow-list's names and patterns, and, when only its address
   * ranges can allow it, by every address it resolves to now (waiting at most
   * {@link REGISTRATION_RESOLVE_WAIT_MS}). Without an allow-list a name is registered as it is:
   * its addresses are checked at each connection. `reachedAt` is where the registration itself
   * arrived (the request's local address and port): the orchestrator's own too.
   * @returns the refusal, or undefined when the endpoint may be registered
   */
  async check(endpoint: string, reachedAt?: OwnListener): Promise<EndpointRefusal | undefined> {
    const origin = endpointOrigin(endpoint);
    if (origin === undefined) return { reason: 'it is not scheme://host:port' };
    const url = new URL(origin);
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname;
    const known = knownAddresses(host);
    if (known) return this.#refusal(host, known, port, reachedAt);
    const named = this.#nameAllowed(host);
    if (named === false && !this.#hasRanges) return { reason: `${host} is not in ${ALLOW_LIST}` };
    // Allowed by name, or no allow-list: checked on its addresses at each connection.
    if (named !== false) return undefined;
    let addresses: readonly string[];
    try {
      addresses = await withinMs(this.#resolve(host), REGISTRATION_RESOLVE_WAIT_MS);
    } catch (error) {
      return {
        reason: `${host} is not in ${ALLOW_LIST}, and does not resolve (${describe(error)}) to addresses that are`,
      };
    }
    return this.#refusal(host, addresses, port, reachedAt);
  }

  /**
   * The addresses a new connection to `hostname:port` may go to, each checked: the hook of the
   * orchestrator's client of its workers (`ClientOptions.resolveHost`), so that the address
   * checked is the address connected to. Every address of a name must be allowed.
   * @param hostname a name, or an IP address (brackets optional)
   * @throws EndpointRefusedError naming the reason
   * @throws the resolver's error when the name does not resolve (`ENOTFOUND`, …)
   */
  async addressesFor(hostname: string, port: number): Promise<readonly string[]> {
    const addresses = knownAddresses(hostname) ?? (await this.#resolve(hostname));
    const refusal = this.#refusal(hostname, addresses, port);
    if (refusal) throw new EndpointRefusedError(`${hostname}:${port} is not allowed: ${refusal.reason}`);
    return addresses;
  }

  get #hasRanges(): boolean {
    return this.#allowed?.some((entry) => entry.kind === 'range') ?? false;
  }

  /** Without an allow-list, undefined (no opinion); with one, whether `name` matches a name or pattern of it. */
  #nameAllowed(name: string): boolean | undefined {
    if (!this.#allowed) return undefined;
    const lower = name.toLowerCase();
    return this.#allowed.some((entry) => matchesName(entry, lower));
  }

  /** Why `hostname:port`, at `texts` (its addresses, or itself for an address), is refused; undefined when allowed. */
  #refusal(
    hostname: string,
    texts: readonly string[],
    port: number,
    reachedAt?: OwnListener,
  ): EndpointRefusal | undefined {
    if (texts.length === 0) return { reason: `${hostname} resolves to no address` };
    const named = parseAddress(hostname) ? false : this.#nameAllowed(hostname);
    const listeners = reachedAt ? [...this.#listeners, reachedAt] : this.#listeners;
    for (const text of texts) {
      const address = parseAddress(text);
      const shown = text === hostname ? text : `${hostname} resolves to ${text}`;
      if (!address) return { reason: `${shown}, which is no IP address` };
      const refused = refusedAddressReason(address);
      if (refused) return { reason: `${shown}: ${refused}` };
      if (listeners.some((listener) => isListener(listener, address, port))) {
        return { reason: `${shown}, port ${port}: the orchestrator's own address` };
      }
      const ranged = this.#allowed?.some((entry) => entry.kind === 'range' && inRange(address, entry.range));
      if (this.#allowed && !named && !ranged) return { reason: `${shown}: not in ${ALLOW_LIST}` };
    }
    return undefined;
  }
}

const ALLOW_LIST = "the orchestrator's allowed worker hosts (--allowed-worker-hosts)";

function describe(error: unknown): string {
  return (error as { code?: string }).code ?? (error as Error).message;
}

/** A connection to a worker endpoint the policy refuses: nothing was sent. */
export class EndpointRefusedError extends Error {
  override readonly name = 'EndpointRefusedError';
}

/** Whether `address:port` is where `listener` accepts connections. */
function isListener(listener: OwnListener, address: IpAddress, port: number): boolean {
  if (listener.port !== port) return false;
  const host = parseAddress(listener.host);
  if (!host) return false;
  // Listening on every address: any address of this machine reaches it.
  if (host.range() === 'unspecified') return isThisMachine(address);
  return sameAddress(host, address);
}

function matchesName(entry: AllowEntry, name: string): boolean {
  if (entry.kind === 'name') return entry.name === name;
  if (entry.kind === 'suffix') return name.endsWith(entry.suffix) && name.length > entry.suffix.length;
  return false;
}

function parseAllowEntry(text: string): AllowEntry {
  const entry = text.trim().toLowerCase();
  if (entry.startsWith('*.')) return { kind: 'suffix', suffix: entry.slice(1) };
  const address = parseAddress(entry);
  if (address) return { kind: 'range', range: [address, address.kind() === 'ipv4' ? 32 : 128] };
  if (entry.includes('/')) {
    const range = parseRange(entry);
    if (range) return { kind: 'range', range };
    throw new OrchestratorConfigError(
      'InvalidSetting',
      'allowedWorkerHosts',
      `Invalid setting allowedWorkerHosts: ${allowEntryProblem(text)}`,
    );
  }
  return { kind: 'name', name: entry };
}

/**
 * What is wrong with an `allowedWorkerHosts` entry, or undefined: an entry with a `/` must be
 * an address range (a name never has one). For the CLI's check of `--allowed-worker-hosts`.
 */
export function allowEntryProblem(entry: string): string | undefined {
  if (!entry.includes('/') || parseRange(entry.trim().toLowerCase())) return undefined;
  // Shown without what a URL given here by mistake may carry (`http://user:pw@host/`).
  return `'${redactUrlsIn(entry)}' is no address range (such as 10.0.0.0/8 or fd00::/8)`;
}

/** `promise`, or a rejection once `ms` have passed. */
function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
