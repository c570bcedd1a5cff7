/**
 * @module sandbox/network/internal-addresses
 * The addresses that belong to the host and its private networks rather than the internet:
 * loopback, private, link-local, CGNAT, benchmarking, multicast and unspecified ranges. No sandbox
 * reaches them through egress, and the server itself connects to none of them on a tenant's behalf
 * (an image pull) unless the operator named the registry.
 */

import { BlockList, isIP } from 'node:net';

export const INTERNAL_IPV4_RANGES = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/3',
] as const;

const INTERNAL_IPV6_RANGES = ['::/127', 'fc00::/7', 'fe80::/10', 'ff00::/8'] as const;

const internal = new BlockList();
for (const range of INTERNAL_IPV4_RANGES) {
  const [network, prefix] = range.split('/');
  internal.addSubnet(network!, Number(prefix), 'ipv4');
}
for (const range of INTERNAL_IPV6_RANGES) {
  const [network, prefix] = range.split('/');
  internal.addSubnet(network!, Number(prefix), 'ipv6');
}

/** Whether `address` (IPv4 or IPv6, IPv4-mapped included) is internal. */
export function isInternalAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return internal.check(mapped, 'ipv4');
  const family = isIP(address);
  if (family === 0) return false;
  return internal.check(address, family === 4 ? 'ipv4' : 'ipv6');
}
