/**
 * @module sandbox/network/dns-filter
 * The resolver of sandboxes whose pool has an egress allowlist. Their DNS queries to the gateway
 * are redirected here (nftables), and only questions about allowlisted names, or names under an
 * allowlisted domain, go on to the pool's resolver; every other name is answered NXDOMAIN on the
 * host and never leaves it, so a lookup cannot carry data out (`<secret>.attacker.example`).
 * Queries are told apart by their source address, the sandbox's own; any other source is ignored.
 * UDP and TCP (RFC 7766 framing) are both served, on one port.
 */

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';

export interface DnsPolicy {
  /** Lower-case domain names without a trailing dot; each allows itself and every name below it. */
  allowedNames: readonly string[];
  /** The resolver allowed questions are sent to (IPv4, port 53). */
  upstream: string;
}

const HEADER_BYTES = 12;
const RCODE_FORMERR = 1;
const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
const UPSTREAM_TIMEOUT_MS = 3_000;
/** A TCP client gets this long to send its query. */
const TCP_IDLE_MS = 10_000;

/** The names asked in a query, lower-case without the trailing dot; undefined for a malformed one. */
export function questionNames(query: Buffer): string[] | undefined {
  if (query.length < HEADER_BYTES) return undefined;
  const count = query.readUInt16BE(4);
  if (count === 0) return undefined;
  const names: string[] = [];
  let at = HEADER_BYTES;
  for (let q = 0; q < count; q++) {
    const labels: string[] = [];
    for (;;) {
      const length = query[at];
      if (length === undefined) return undefined;
      at++;
      if (length === 0) break;
      // Compression pointers and extended labels have no place in a question.
      if (length > 63 || at + length > query.length) return undefined;
      labels.push(query.toString('latin1', at, at + length).toLowerCase());
      at += length;
    }
    at += 4; // type and class
    if (at > query.length) return undefined;
    names.push(labels.join('.'));
  }
  return names;
}

export function isAllowedName(name: string, allowed: readonly string[]): boolean {
  return allowed.some((domain) => name === domain || name.endsWith(`.${domain}`));
}

/** An answer with no records: the query's header and questions, flagged a response, with `rcode`. */
export function refusal(query: Buffer, rcode: number): Buffer {
  const answer = Buffer.from(query);
  // QR=1, opcode and RD kept; RA=1, Z=0, rcode.
  answer[2] = 0x80 | (query[2]! & 0x79);
  answer[3] = 0x80 | rcode;
  // Keep the question section only: no answer, authority or additional records.
  answer.writeUInt16BE(0, 6);
  answer.writeUInt16BE(0, 8);
  answer.writeUInt16BE(0, 10);
  return answer;
}

export class DnsFilter {
  private readonly policies = new Map<string, DnsPolicy>();
  private udp: UdpSocket | undefined;
  private tcp: Server | undefined;
  private listening: Promise<number> | undefined;

  /** Hears each refused question, with the asking sandbox's address. */
  constructor(private readonly onRefused: (address: string, name: string) => void = () => undefined) {}

  /** Starts serving on one port of every local address (idempotent); resolves with the port. */
  start(): Promise<number> {
    this.listening ??= this.bind().catch((error: unknown) => {
      this.listening = undefined;
      throw error;
    });
    return this.listening;
  }

  /** Answers the sandbox at `address` by `policy` from now on. */
  set(address: string, policy: DnsPolicy): void {
    this.policies.set(address, policy);
  }

  delete(address: string): void {
    this.policies.delete(address);
  }

  stop(): void {
    this.udp?.close();
    this.tcp?.close();
    this.udp = undefined;
    this.tcp = undefined;
    this.listening = undefined;
  }

  /** Binds UDP on a free port, then TCP on the same one (another free port when that one is taken). */
  private async bind(): Promise<number> {
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(0, '0.0.0.0', () => resolve());
      });
      const port = udp.address().port;
      const tcp = createServer((socket) => this.serveTcp(socket));
      const bound = await new Promise<boolean>((resolve) => {
        tcp.once('error', () => resolve(false));
        tcp.listen(port, '0.0.0.0', () => resolve(true));
      });
      if (!bound) {
        udp.close();
        if (attempt >= 20) throw new Error('no port free for UDP and TCP both');
        continue;
      }
      udp.unref();
      tcp.unref();
      udp.on('message', (query, from) => {
        void this.answer(query, from.address).then((reply) => {
          if (reply) udp.send(reply, from.port, from.address);
        });
      });
      udp.on('error', () => undefined);
      this.udp = udp;
      this.tcp = tcp;
      return port;
    }
  }

  private serveTcp(socket: Socket): void {
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        const query = pending.subarray(2, 2 + pending.readUInt16BE(0));
        pending = pending.subarray(2 + query.length);
        void this.answer(Buffer.from(query), socket.remoteAddress ?? '').then((reply) => {
          if (!reply || socket.destroyed) return;
          const length = Buffer.alloc(2);
          length.writeUInt16BE(reply.length);
          socket.write(Buffer.concat([length, reply]));
        });
      }
    });
  }

  /** The answer to a query from `address`; undefined (silence) for a source that is no sandbox. */
  private async answer(query: Buffer, address: string): Promise<Buffer | undefined> {
    const policy = this.policies.get(address.replace(/^::ffff:/, ''));
    if (!policy) return undefined;
    const names = questionNames(query);
    if (!names) return query.length >= HEADER_BYTES ? refusal(query, RCODE_FORMERR) : undefined;
    const refused = names.filter((name) => !isAllowedName(name, policy.allowedNames));
    if (refused.length > 0) {
      for (const name of refused) this.onRefused(address, name);
      return refusal(query, RCODE_NXDOMAIN);
    }
    return (await forward(query, policy.upstream)) ?? refusal(query, RCODE_SERVFAIL);
  }
}

/** Asks `upstream` over UDP; undefined when it does not answer in time. */
function forward(query: Buffer, upstream: string): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const done = (reply: Buffer | undefined) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    };
    const timer = setTimeout(() => done(undefined), UPSTREAM_TIMEOUT_MS);
    socket.on('error', () => done(undefined));
    socket.on('message', (reply: Buffer, from: RemoteInfo) => {
      // Only the resolver's answer to this very query (its id) is relayed.
      if (from.address === upstream && reply.length >= 2 && reply.readUInt16BE(0) === query.readUInt16BE(0)) {
        done(reply);
      }
    });
    socket.send(query, 53, upstream);
  });
}
