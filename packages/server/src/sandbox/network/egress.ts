/**
 * @module sandbox/network/egress
 * Outbound network for sandboxes of `EgressEnabled` pools: a veth pair per sandbox (`sbx-<n>` on the
 * host, `eth0` inside, a /30 of its own), routed and masqueraded by the host, filtered by one
 * nftables table. A sandbox of an `EgressDisabled` pool gets none of this: its network namespace
 * holds loopback only.
 *
 * The rules: nothing enters a sandbox unless it answers the sandbox; a sandbox never reaches the
 * host itself, another sandbox, or private, link-local, shared (CGNAT), loopback or multicast
 * addresses; beyond that it reaches either any public address or only its allowlist, whose entries
 * may name a port (`host:443`, `203.0.113.0/24:5432/tcp`; without one, every port and protocol).
 * Its DNS queries to its gateway go to its pool's resolver (the server's by default): straight
 * there without an allowlist, and with one through the host's {@link DnsFilter}, which answers
 * only the allowlist's names, so no other name leaves the host. Each denied connection, to another
 * sandbox too, is logged by the kernel (rate-limited) with a prefix {@link DeniedWatcher} reads
 * back from /dev/kmsg.
 *
 * The table is shared by every server on the host; what differs per sandbox (allowlist, resolver)
 * lives in set and map elements keyed by the sandbox's address, so servers never overwrite each other.
 */

import { Resolver } from 'node:dns/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { isIPv4, type Socket } from 'node:net';

import { AppError, ErrorCode } from '../../errors.js';
import { runChecked, type CommandRunner } from '../command.js';
import { DnsFilter, type DnsPolicy } from './dns-filter.js';
import { INTERNAL_IPV4_RANGES } from './internal-addresses.js';

const TABLE = 'sandpool';
const INTERFACE_PREFIX = 'sbx-';
const LOG_PREFIX = 'sandpool-egress-deny: ';
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
const CIDR = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/;
const ENTRY = /^([^:]+)(?::(\d{1,5})(?:\/(tcp|udp))?)?$/;

/** One allowlist entry: an IPv4 address, CIDR or domain name, and optionally one port (and protocol). */
export interface AllowEntry {
  target: string;
  port?: number;
  /** With a port: tcp, udp, or both when absent. */
  protocol?: 'tcp' | 'udp';
}

/** The entry `text` names (`host`, `host:443`, `10.0.0.0/24:5432/tcp`), or undefined if it is none. */
export function parseAllowEntry(text: string): AllowEntry | undefined {
  const match = ENTRY.exec(text);
  if (!match) return undefined;
  const [, target = '', port, protocol] = match;
  const cidr = CIDR.exec(target);
  const validTarget = cidr
    ? isIPv4(cidr[1]!) && (cidr[2] === undefined || Number(cidr[2]) <= 32)
    : HOSTNAME.test(target);
  if (!validTarget) return undefined;
  if (port === undefined) return { target };
  const number = Number(port);
  if (number < 1 || number > 65_535) return undefined;
  return { target, port: number, ...(protocol && { protocol: protocol as 'tcp' | 'udp' }) };
}

export const isAllowEntry = (text: string) => parseAllowEntry(text) !== undefined;

/** The allowlist's domain names: what its sandboxes' DNS answers, with everything below them. */
export const allowedNames = (allow: readonly string[]) =>
  allow
    .map(parseAllowEntry)
    .filter((entry): entry is AllowEntry => entry !== undefined && !CIDR.test(entry.target))
    .map((entry) => entry.target.toLowerCase());

/** An allowlist entry resolved: an address range, and the port it is limited to, if any. */
interface AllowedRange {
  range: string;
  port?: number;
  protocol?: 'tcp' | 'udp';
}

export interface SandboxAddressing {
  /** Host-side interface. */
  hostInterface: string;
  /** The host's address on the link: the sandbox's gateway and DNS server. */
  gateway: string;
  /** The sandbox's own address. */
  address: string;
}

/**
 * The /30 of the sandbox whose host id range is number `range` (its first host uid / 65536): ranges
 * never overlap between servers, so neither do addresses or interface names.
 */
export function addressing(subnet: string, range: number): SandboxAddressing {
  const [base = '', prefix = '32'] = subnet.split('/');
  const capacity = 2 ** (32 - Number(prefix)) / 4;
  if (range >= capacity) {
    throw new AppError(
      ErrorCode.SandboxRuntimeError,
      `egress subnet ${subnet} has no room for sandbox range ${range}`,
    );
  }
  const start = base.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0) + range * 4;
  const text = (n: number) => [24, 16, 8, 0].map((shift) => (n >>> shift) & 255).join('.');
  return { hostInterface: `${INTERFACE_PREFIX}${range}`, gateway: text(start + 1), address: text(start + 2) };
}

/** A connection the rules refused, as the kernel logged it. */
export interface EgressAttempt {
  hostInterface: string;
  destination: string;
  protocol: string;
  port: number | null;
  /** Tells the retries of one connection (the same source port) from a new connection. */
  sourcePort: number | null;
}

/** Reads one kernel log line of the deny rule; undefined for any other line. */
export function parseDenied(line: string): EgressAttempt | undefined {
  const at = line.indexOf(LOG_PREFIX);
  if (at === -1) return undefined;
  const fields = Object.fromEntries(
    line
      .slice(at + LOG_PREFIX.length)
      .split(' ')
      .map((pair) => pair.split('='))
      .filter((pair): pair is [string, string] => pair.length === 2),
  );
  if (!fields.IN || !fields.DST) return undefined;
  return {
    hostInterface: fields.IN,
    destination: fields.DST,
    protocol: (fields.PROTO ?? 'IP').toLowerCase(),
    port: fields.DPT ? Number(fields.DPT) : null,
    sourcePort: fields.SPT ? Number(fields.SPT) : null,
  };
}

function ruleset(): string {
  const sandbox = `"${INTERFACE_PREFIX}*"`;
  return `add table inet ${TABLE}
add set inet ${TABLE} open { type ipv4_addr; }
add set inet ${TABLE} allowed { type ipv4_addr . ipv4_addr; flags interval; }
add set inet ${TABLE} allowed_ports { type ipv4_addr . ipv4_addr . inet_proto . inet_service; flags interval; }
add set inet ${TABLE} blocked { type ipv4_addr; flags interval; }
add map inet ${TABLE} dns_target { type ipv4_addr : ipv4_addr . inet_service; }
flush set inet ${TABLE} blocked
add element inet ${TABLE} blocked { ${INTERNAL_IPV4_RANGES.join(', ')} }
add chain inet ${TABLE} prerouting { type nat hook prerouting priority dstnat; }
add chain inet ${TABLE} postrouting { type nat hook postrouting priority srcnat; }
add chain inet ${TABLE} input { type filter hook input priority filter; policy accept; }
add chain inet ${TABLE} forward { type filter hook forward priority filter; policy accept; }
add chain inet ${TABLE} egress
add chain inet ${TABLE} deny
flush chain inet ${TABLE} prerouting
flush chain inet ${TABLE} postrouting
flush chain inet ${TABLE} input
flush chain inet ${TABLE} forward
flush chain inet ${TABLE} egress
flush chain inet ${TABLE} deny
add rule inet ${TABLE} prerouting iifname ${sandbox} meta l4proto { tcp, udp } th dport 53 fib daddr type local dnat ip to ip saddr map @dns_target
add rule inet ${TABLE} postrouting iifname ${sandbox} oifname != ${sandbox} masquerade
add rule inet ${TABLE} input iifname ${sandbox} ct state established,related accept
add rule inet ${TABLE} input iifname ${sandbox} ct status dnat meta l4proto { tcp, udp } accept
add rule inet ${TABLE} input iifname ${sandbox} goto deny
add rule inet ${TABLE} forward oifname ${sandbox} ct state established,related accept
add rule inet ${TABLE} forward iifname ${sandbox} oifname ${sandbox} goto deny
add rule inet ${TABLE} forward oifname ${sandbox} drop
add rule inet ${TABLE} forward iifname ${sandbox} jump egress
add rule inet ${TABLE} egress ct state established,related accept
add rule inet ${TABLE} egress ct status dnat meta l4proto { tcp, udp } th dport 53 accept
add rule inet ${TABLE} egress ip daddr @blocked goto deny
add rule inet ${TABLE} egress ip saddr @open accept
add rule inet ${TABLE} egress ip saddr . ip daddr @allowed accept
add rule inet ${TABLE} egress ip saddr . ip daddr . meta l4proto . th dport @allowed_ports accept
add rule inet ${TABLE} egress goto deny
add rule inet ${TABLE} deny limit rate 50/second burst 100 packets log prefix "${LOG_PREFIX}"
add rule inet ${TABLE} deny drop
`;
}

export interface EgressNetworkOptions {
  run: CommandRunner;
  /** Where each sandbox gets its /30 (a /14 holds every host id range). */
  subnet: string;
  /** The resolver a pool without one of its own gets: its sandboxes' DNS and its allowlist's names. */
  dnsServer: string;
  /** Hears each name an allowlisted sandbox asked for and was refused, with the sandbox's address. */
  onRefusedName?: (address: string, name: string) => void;
}

/** What a sandbox's link needs beyond its addressing: its allowlist and its resolver. */
export interface EgressPolicy {
  allow: readonly string[];
  /** The pool's resolver; the server's when absent. */
  dnsServer?: string;
}

/** What {@link EgressNetwork.attach} set up, kept beside the sandbox to undo or restore it. */
export interface EgressLink {
  /** Rule elements added for the sandbox. */
  elements: string[];
  /** With an allowlist: the names its DNS answers and where it asks. */
  dns?: DnsPolicy;
}

export class EgressNetwork {
  private prepared: Promise<void> | undefined;
  private readonly dnsFilter: DnsFilter;

  constructor(private readonly options: EgressNetworkOptions) {
    this.dnsFilter = new DnsFilter(options.onRefusedName);
  }

  /** Turns on forwarding and loads the table (idempotent; every server loads the same rules). */
  prepare(): Promise<void> {
    this.prepared ??= (async () => {
      if ((await readFile('/proc/sys/net/ipv4/ip_forward', 'utf8')).trim() !== '1') {
        await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
      }
      await runChecked(this.options.run, 'nft', ['-f', '-'], { input: ruleset() });
    })();
    this.prepared.catch(() => (this.prepared = undefined));
    return this.prepared;
  }

  /** The resolver for `policy`: the pool's, else the server's; refused when there is none. */
  private resolverOf(policy: EgressPolicy): string {
    const server = policy.dnsServer ?? this.options.dnsServer;
    if (!isIPv4(server)) {
      throw new AppError(
        ErrorCode.SandboxStartFailed,
        'no resolver for sandboxes with egress: set egressDnsServer, or the pool’s sessionNetworkConfiguration.dnsServer',
      );
    }
    return server;
  }

  /** The address ranges of an allowlist, its domain names asked of `resolverAddress`. */
  async resolve(allow: readonly string[], resolverAddress: string): Promise<AllowedRange[]> {
    const resolver = new Resolver({ timeout: 3000, tries: 2 });
    resolver.setServers([resolverAddress]);
    const ranges: AllowedRange[] = [];
    for (const text of allow) {
      const entry = parseAllowEntry(text);
      if (!entry) continue;
      const limit = {
        ...(entry.port !== undefined && { port: entry.port }),
        ...(entry.protocol && { protocol: entry.protocol }),
      };
      if (CIDR.test(entry.target)) {
        ranges.push({ range: entry.target.includes('/') ? entry.target : `${entry.target}/32`, ...limit });
        continue;
      }
      const addresses = await resolver.resolve4(entry.target).catch((error: unknown) => {
        throw new AppError(
          ErrorCode.SandboxStartFailed,
          `cannot resolve ${entry.target} of the egress allowlist: ${(error as Error).message}`,
        );
      });
      ranges.push(...addresses.map((address) => ({ range: `${address}/32`, ...limit })));
    }
    return ranges;
  }

  /**
   * Gives the sandbox whose init is `pid` its link, routes and rules: an empty allowlist means any
   * public address, else only those ranges (and ports). Called before the sandbox's process starts.
   */
  async attach(pid: number, at: SandboxAddressing, policy: EgressPolicy): Promise<EgressLink> {
    await this.prepare();
    const resolverAddress = this.resolverOf(policy);
    const ranges = await this.resolve(policy.allow, resolverAddress);
    const { run } = this.options;
    const inside = (args: string[]) =>
      runChecked(run, 'nsenter', [`--net=/proc/${pid}/ns/net`, '--', 'ip', ...args]);
    await run('ip', ['link', 'del', at.hostInterface]);
    await runChecked(run, 'ip', [
      'link',
      'add',
      at.hostInterface,
      'type',
      'veth',
      'peer',
      'name',
      'eth0',
      'netns',
      String(pid),
    ]);
    await runChecked(run, 'ip', ['addr', 'add', `${at.gateway}/30`, 'dev', at.hostInterface]);
    await runChecked(run, 'ip', ['link', 'set', at.hostInterface, 'up']);
    await inside(['addr', 'add', `${at.address}/30`, 'dev', 'eth0']);
    await inside(['link', 'set', 'eth0', 'up']);
    await inside(['route', 'add', 'default', 'via', at.gateway]);
    const dns: DnsPolicy | undefined =
      policy.allow.length > 0
        ? { allowedNames: allowedNames(policy.allow), upstream: resolverAddress }
        : undefined;
    const elements = [await this.dnsElement(at, dns, resolverAddress), ...rangeElements(at, ranges)];
    await this.addElements(elements);
    return { elements, ...(dns && { dns }) };
  }

  /**
   * Takes up a sandbox's link after a restart: its DNS goes to this server's filter now (the one
   * that answered it went with the old process). Returns the link as it now stands.
   */
  async restore(at: SandboxAddressing, link: EgressLink): Promise<EgressLink> {
    if (!link.dns) return link;
    await this.prepare();
    const stale = link.elements.filter((element) => element.startsWith('dns_target '));
    for (const element of stale) await this.deleteElement(element);
    const fresh = await this.dnsElement(at, link.dns, link.dns.upstream);
    await this.addElements([fresh]);
    return { ...link, elements: [fresh, ...link.elements.filter((element) => !stale.includes(element))] };
  }

  /** Where the sandbox's DNS goes: the filter (with an allowlist), else its resolver directly. */
  private async dnsElement(
    at: SandboxAddressing,
    dns: DnsPolicy | undefined,
    resolverAddress: string,
  ): Promise<string> {
    if (!dns) return `dns_target { ${at.address} : ${resolverAddress} . 53 }`;
    const port = await this.dnsFilter.start();
    this.dnsFilter.set(at.address, dns);
    return `dns_target { ${at.address} : ${at.gateway} . ${port} }`;
  }

  private async addElements(elements: readonly string[]): Promise<void> {
    await runChecked(this.options.run, 'nft', ['-f', '-'], {
      input: elements.map((element) => `add element inet ${TABLE} ${element}\n`).join(''),
    });
  }

  private async deleteElement(element: string): Promise<void> {
    await this.options.run('nft', ['-f', '-'], { input: `delete element inet ${TABLE} ${element}\n` });
  }

  /** Removes the sandbox's link and the rule elements {@link attach} added (idempotent). */
  async detach(at: SandboxAddressing, link: EgressLink): Promise<void> {
    this.dnsFilter.delete(at.address);
    await this.options.run('ip', ['link', 'del', at.hostInterface]);
    for (const element of link.elements) await this.deleteElement(element);
  }
}

/** The set elements letting the sandbox at `at` reach `ranges`: every public address when none. */
function rangeElements(at: SandboxAddressing, ranges: readonly AllowedRange[]): string[] {
  if (ranges.length === 0) return [`open { ${at.address} }`];
  const whole = ranges.filter((r) => r.port === undefined).map((r) => `${at.address} . ${r.range}`);
  const ported = ranges.flatMap((r) =>
    r.port === undefined
      ? []
      : (r.protocol ? [r.protocol] : ['tcp', 'udp']).map(
          (protocol) => `${at.address} . ${r.range} . ${protocol} . ${String(r.port)}`,
        ),
  );
  return [
    ...(whole.length > 0 ? [`allowed { ${whole.join(', ')} }`] : []),
    ...(ported.length > 0 ? [`allowed_ports { ${ported.join(', ')} }`] : []),
  ];
}

/**
 * Reads the kernel log for the deny rule's lines from now on (older lines are skipped by their
 * time stamp) and hands each attempt to `listener`.
 */
export class DeniedWatcher {
  private reader: ChildProcess | undefined;

  async start(listener: (attempt: EgressAttempt) => void): Promise<void> {
    if (this.reader) return;
    const uptime = Number((await readFile('/proc/uptime', 'utf8')).split(' ')[0]) * 1e6;
    // A child reads the device: a read of /dev/kmsg in this process would never let it exit.
    this.reader = spawn('cat', ['/dev/kmsg'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.reader.unref();
    const output = this.reader.stdout as Socket;
    output.unref();
    let rest = '';
    output.on('data', (chunk: Buffer) => {
      const lines = (rest + chunk.toString()).split('\n');
      rest = lines.pop() ?? '';
      for (const record of lines) {
        // "<priority>,<seq>,<microseconds since boot>,<flags>;<message>"
        const head = record.slice(0, record.indexOf(';'));
        if (Number(head.split(',')[2]) < uptime) continue;
        const attempt = parseDenied(record);
        if (attempt) listener(attempt);
      }
    });
    this.reader.on('error', () => this.stop());
  }

  stop(): void {
    this.reader?.kill();
    this.reader = undefined;
  }
}
