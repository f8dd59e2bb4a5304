/**
 * Who a client is, by address: the peer of the connection, or, behind proxies
 * that Pulse is told to trust (TRUST_PROXY), the address they report in
 * `X-Forwarded-For`.
 *
 * `X-Forwarded-For` is written by whoever sent the request, so it is believed
 * only as far as the configuration says: by default never (the peer address is
 * the client); with a hop count n, the n proxies nearest Pulse are trusted and
 * the address the outermost of them saw is the client; with a CIDR list, proxies
 * in those ranges are trusted and the first address from the right outside them
 * is the client. A client cannot pick its own identity by sending the header.
 */
import type http from 'node:http';
import net from 'node:net';

/** What TRUST_PROXY says: no proxy, a number of proxies, or the proxies' ranges. */
export type TrustProxy = { kind: 'none' } | { kind: 'hops'; hops: number } | { kind: 'cidrs'; cidrs: readonly string[] };

/** Returns the function that names the address of a request's client. */
export function createClientAddress(trust: TrustProxy): (req: http.IncomingMessage) => string {
  if (trust.kind === 'none') return (req) => normalise(req.socket.remoteAddress);
  if (trust.kind === 'hops') {
    return (req) => {
      // Nearest last: what each proxy appended, then the peer itself.
      const chain = [...forwardedFor(req), normalise(req.socket.remoteAddress)];
      return chain[Math.max(0, chain.length - 1 - trust.hops)]!;
    };
  }
  const trusted = new net.BlockList();
  for (const cidr of trust.cidrs) {
    const [address, prefix] = cidr.split('/') as [string, string | undefined];
    const family = net.isIPv6(address) ? 'ipv6' : 'ipv4';
    trusted.addSubnet(address, Number(prefix ?? (family === 'ipv6' ? 128 : 32)), family);
  }
  const isTrusted = (address: string) => net.isIP(address) !== 0 && trusted.check(address, net.isIPv6(address) ? 'ipv6' : 'ipv4');
  return (req) => {
    const chain = [...forwardedFor(req), normalise(req.socket.remoteAddress)];
    for (let i = chain.length - 1; i > 0; i--) {
      if (!isTrusted(chain[i]!)) return chain[i]!;
    }
    return chain[0]!;
  };
}

/**
 * Parses TRUST_PROXY: unset or `false` (trust no proxy), a hop count such as `1`,
 * or a comma-separated CIDR list such as `10.0.0.0/8,fd00::/8`. Returns a problem
 * to report instead when the value is none of these.
 */
export function parseTrustProxy(value: string | undefined): TrustProxy | { problem: string } {
  const text = value?.trim().toLowerCase();
  if (!text || text === 'false' || text === '0') return { kind: 'none' };
  if (/^\d+$/.test(text)) return { kind: 'hops', hops: Number(text) };
  const cidrs = text.split(',').map((c) => c.trim());
  const bad = cidrs.find((cidr) => {
    const [address, prefix, ...rest] = cidr.split('/');
    const version = net.isIP(address ?? '');
    if (version === 0 || rest.length > 0) return true;
    if (prefix === undefined) return false;
    return !/^\d+$/.test(prefix) || Number(prefix) > (version === 6 ? 128 : 32);
  });
  if (bad !== undefined) return { problem: `expected false, a number of proxy hops, or a comma-separated list of CIDRs such as 10.0.0.0/8; "${bad}" is none of these` };
  return { kind: 'cidrs', cidrs };
}

// Private: the addresses in X-Forwarded-For, in the order the proxies added them.
function forwardedFor(req: http.IncomingMessage): string[] {
  const header = req.headers['x-forwarded-for'];
  const text = Array.isArray(header) ? header.join(',') : header;
  if (!text) return [];
  return text
    .split(',')
    .map((part) => normalise(part.trim()))
    .filter((part) => part.length > 0);
}

// Private: one spelling per address, so `::ffff:10.0.0.1` and `10.0.0.1` are one client.
function normalise(address: string | undefined): string {
  if (!address) return 'unknown';
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}
