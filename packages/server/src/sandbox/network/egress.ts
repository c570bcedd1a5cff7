/**
 * @module sandbox/network/egress
 * Outbound network for sandboxes of `EgressEnabled` pools: a veth pair per sandbox (`sbx-<n>` on the
 * host, `eth0` inside, a /30 of its own), routed and masqueraded by the host, filtered by one
 * nftables table. A sandbox of an `EgressDisabled` pool gets none of this: its network namespace
 * holds loopback only.
 *
 * The rules: nothing enters a sandbox unless it answers the sandbox; a sandbox never reaches the
 * host itself, another sandbox, or private, link-local, shared (CGNAT), loopback or multicast
 * addresses; its DNS queries to its gateway go to the resolver its server names; beyond that it
 * reaches either any public address or only its allowlist. Each denied connection is logged by the
 * kernel (rate-limited) with a prefix {@link DeniedWatcher} reads back from /dev/kmsg.
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
import { INTERNAL_IPV4_RANGES } from './internal-addresses.js';

const TABLE = 'sandpool';
const INTERFACE_PREFIX = 'sbx-';
const LOG_PREFIX = 'sandpool-egress-deny: ';
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/i;
const CIDR = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/;

/** Whether `entry` is an allowlist entry: an IPv4 address or CIDR, or a domain name. */
export function isAllowEntry(entry: string): boolean {
  const cidr = CIDR.exec(entry);
  if (cidr) return isIPv4(cidr[1]!) && (cidr[2] === undefined || Number(cidr[2]) <= 32);
  return HOSTNAME.test(entry);
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
add set inet ${TABLE} blocked { type ipv4_addr; flags interval; }
add map inet ${TABLE} resolver { type ipv4_addr : ipv4_addr; }
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
add rule inet ${TABLE} prerouting iifname ${sandbox} meta l4proto { tcp, udp } th dport 53 fib daddr type local dnat ip to ip saddr map @resolver
add rule inet ${TABLE} postrouting iifname ${sandbox} oifname != ${sandbox} masquerade
add rule inet ${TABLE} input iifname ${sandbox} ct state established,related accept
add rule inet ${TABLE} input iifname ${sandbox} goto deny
add rule inet ${TABLE} forward oifname ${sandbox} ct state established,related accept
add rule inet ${TABLE} forward oifname ${sandbox} drop
add rule inet ${TABLE} forward iifname ${sandbox} jump egress
add rule inet ${TABLE} egress ct state established,related accept
add rule inet ${TABLE} egress ct status dnat meta l4proto { tcp, udp } th dport 53 accept
add rule inet ${TABLE} egress ip daddr @blocked goto deny
add rule inet ${TABLE} egress ip saddr @open accept
add rule inet ${TABLE} egress ip saddr . ip daddr @allowed accept
add rule inet ${TABLE} egress goto deny
add rule inet ${TABLE} deny limit rate 50/second burst 100 packets log prefix "${LOG_PREFIX}"
add rule inet ${TABLE} deny drop
`;
}

export interface EgressNetworkOptions {
  run: CommandRunner;
  /** Where each sandbox gets its /30 (a /14 holds every host id range). */
  subnet: string;
  /** The resolver the sandboxes' DNS queries go to, and domain allowlists are resolved with. */
  dnsServer: string;
}

export class EgressNetwork {
  private prepared: Promise<void> | undefined;

  constructor(private readonly options: EgressNetworkOptions) {}

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

  /** The addresses of domain names in an allowlist, asked of the pools' resolver. */
  async resolve(allow: readonly string[]): Promise<string[]> {
    const resolver = new Resolver({ timeout: 3000, tries: 2 });
    resolver.setServers([this.options.dnsServer]);
    const ranges: string[] = [];
    for (const entry of allow) {
      if (CIDR.test(entry)) {
        ranges.push(entry.includes('/') ? entry : `${entry}/32`);
        continue;
      }
      const addresses = await resolver.resolve4(entry).catch((error: unknown) => {
        throw new AppError(
          ErrorCode.SandboxStartFailed,
          `cannot resolve ${entry} of the egress allowlist: ${(error as Error).message}`,
        );
      });
      ranges.push(...addresses.map((address) => `${address}/32`));
    }
    return ranges;
  }

  /**
   * Gives the sandbox whose init is `pid` its link, routes and rules: `allow` empty means any public
   * address, else only those ranges. Called before the sandbox's process starts. Returns the rule
   * elements it added, which {@link detach} removes.
   */
  async attach(pid: number, at: SandboxAddressing, allow: readonly string[]): Promise<string[]> {
    await this.prepare();
    if (!isIPv4(this.options.dnsServer)) {
      throw new AppError(
        ErrorCode.SandboxStartFailed,
        'no resolver for sandboxes with egress: set egressDnsServer',
      );
    }
    const ranges = await this.resolve(allow);
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
    const elements = [
      `resolver { ${at.address} : ${this.options.dnsServer} }`,
      ranges.length === 0
        ? `open { ${at.address} }`
        : `allowed { ${ranges.map((range) => `${at.address} . ${range}`).join(', ')} }`,
    ];
    await runChecked(run, 'nft', ['-f', '-'], {
      input: elements.map((element) => `add element inet ${TABLE} ${element}\n`).join(''),
    });
    return elements;
  }

  /** Removes the sandbox's link and the rule elements {@link attach} added (idempotent). */
  async detach(at: SandboxAddressing, elements: readonly string[]): Promise<void> {
    const { run } = this.options;
    await run('ip', ['link', 'del', at.hostInterface]);
    for (const element of elements) {
      await run('nft', ['-f', '-'], { input: `delete element inet ${TABLE} ${element}\n` });
    }
  }
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
