import { networkInterfaces } from 'node:os';
import ipaddr from 'ipaddr.js';

/** An IPv4 or IPv6 address as `ipaddr.js` parses it. */
export type IpAddress = ipaddr.IPv4 | ipaddr.IPv6;

/**
 * The address `text` names (an IPv4 address in dotted decimal, an IPv6 address with or without
 * brackets), with an IPv4 address that IPv6 carries (IPv4-mapped `::ffff:a.b.c.d`,
 * IPv4-translated `::ffff:0:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, IPv4-compatible `::a.b.c.d`)
 * given as that IPv4 address: it is where a connection to it ends up. Undefined for a name.
 *
 * Only the dotted-decimal form of IPv4 is read as an address: the decimal, hex and octal forms
 * (`2852039166`, `0xa9fe.0xa9fe`) are the URL parser's job (WHATWG URL turns them into dotted
 * decimal), and a resolver answers in dotted decimal.
 */
export function parseAddress(text: string): IpAddress | undefined {
  const bare = text.startsWith('[') && text.endsWith(']') ? text.slice(1, -1) : text;
  let address: IpAddress;
  if (ipaddr.IPv4.isValidFourPartDecimal(bare)) address = ipaddr.IPv4.parse(bare);
  else if (ipaddr.IPv6.isValid(bare)) address = ipaddr.IPv6.parse(bare);
  else return undefined;
  return embeddedIpv4(address) ?? address;
}

/**
 * The address range `text` names (`10.0.0.0/8`, `fd00::/8`: an address in the form
 * {@link parseAddress} reads, `/`, a prefix length within the family's bits), or undefined.
 */
export function parseRange(text: string): [IpAddress, number] | undefined {
  if (!ipaddr.IPv4.isValidCIDRFourPartDecimal(text) && !ipaddr.IPv6.isValidCIDR(text)) return undefined;
  return ipaddr.parseCIDR(text);
}

/** The IPv4 address an IPv6 address carries in its last 32 bits, for the prefixes that route to it. */
function embeddedIpv4(address: IpAddress): ipaddr.IPv4 | undefined {
  if (address.kind() !== 'ipv6') return undefined;
  const v6 = address as ipaddr.IPv6;
  const range = v6.range();
  const [a, b, c, d, e, f, g, h] = v6.parts as [number, number, number, number, number, number, number, number];
  // 64:ff9b::/96 (RFC 6052, the well-known NAT64 prefix) only: its local-use /48 puts the IPv4
  // address elsewhere depending on the prefix length the network chose.
  const nat64 = a === 0x64 && b === 0xff9b && c === 0 && d === 0 && e === 0 && f === 0;
  // ::a.b.c.d (RFC 4291's deprecated IPv4-compatible form), but not :: and ::1 themselves.
  const compatible = a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0 && g !== 0;
  if (range !== 'ipv4Mapped' && range !== 'rfc6145' && !nat64 && !compatible) return undefined;
  return new ipaddr.IPv4([g >> 8, g & 0xff, h >> 8, h & 0xff]);
}

/**
 * Cloud metadata services outside 169.254.0.0/16, refused like it: AWS's IPv6 instance metadata
 * (`fd00:ec2::254`, in the unique-local range, documented in the EC2 user guide, "IMDS IPv6
 * endpoint") and Alibaba Cloud's (`100.100.100.200`, in the shared address space of RFC 6598).
 * Azure, Google Cloud, Oracle and AWS over IPv4 use 169.254.169.254.
 */
const METADATA_ADDRESSES: readonly IpAddress[] = ['fd00:ec2::254', '100.100.100.200'].map((text) =>
  parseAddress(text)!,
);

/**
 * Why no worker may be at `address`, whatever the allow-list says, or undefined when it may be:
 * a link-local address (169.254.0.0/16, where cloud metadata services answer, and fe80::/10),
 * a known metadata address, a multicast, unspecified (`0.0.0.0/8`, `::`: a connection to them
 * reaches this machine) or broadcast address. Loopback and private addresses may be workers.
 */
export function refusedAddressReason(address: IpAddress): string | undefined {
  if (METADATA_ADDRESSES.some((metadata) => sameAddress(metadata, address))) {
    return 'a cloud metadata address';
  }
  switch (address.range()) {
    case 'linkLocal':
      return address.kind() === 'ipv4'
        ? 'a link-local address (169.254.0.0/16, where cloud metadata services answer)'
        : 'a link-local address (fe80::/10)';
    case 'multicast':
      return 'a multicast address';
    case 'unspecified':
      return 'an unspecified address (0.0.0.0/8 or ::, which reaches this machine)';
    case 'broadcast':
      return 'the broadcast address';
    default:
      return undefined;
  }
}

/** Whether `a` and `b` are the same address (an IPv4 address and its IPv4-mapped form are). */
export function sameAddress(a: IpAddress, b: IpAddress): boolean {
  return a.kind() === b.kind() && a.toNormalizedString() === b.toNormalizedString();
}

/** Whether `address` is within `range` (`[network, prefix length]`), of the same family. */
export function inRange(address: IpAddress, range: [IpAddress, number]): boolean {
  return address.kind() === range[0].kind() && address.match(range);
}

/**
 * Whether a connection to `address` reaches this machine: a loopback or unspecified address, or
 * one of its network interfaces' addresses (read now: they change with DHCP, VPNs, containers).
 */
export function isThisMachine(address: IpAddress): boolean {
  const range = address.range();
  if (range === 'loopback' || range === 'unspecified') return true;
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) {
      const own = parseAddress(entry.address);
      if (own && sameAddress(own, address)) return true;
    }
  }
  return false;
}
