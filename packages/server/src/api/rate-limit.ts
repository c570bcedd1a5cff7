/**
 * @module api/rate-limit
 * Request rate limits, so that one caller cannot starve a pool or the server: a token bucket per
 * caller (the API key or identity a credential's lineage starts at, so a caller's tokens share its
 * bucket) and one per session identifier of a pool (many callers sharing an identifier share its
 * bucket), charged alike by every way into a session (HTTP, both MCP servers, the proxy). A request over either limit gets 429 RateLimitExceeded
 * with a Retry-After of the seconds until its bucket holds a token again. Buckets live in memory,
 * per server process; the least recently used are dropped beyond a bound, which only ever forgives.
 *
 * The caller's bucket is charged once the caller is authenticated; an identifier's bucket only
 * once the caller is authorized on the pool and its request checked (api/request-path), keyed by
 * the pool's full ARM id and the identifier the route parsed, so nobody can spend another team's
 * budget or step around it with a spelling of the path.
 */

import { rootOf, type Principal } from '../auth/roles.js';
import { AppError, ErrorCode } from '../errors.js';

export interface RateLimitSettings {
  /** Requests per second per principal; 0 turns the limit off. */
  perPrincipal: number;
  /** Requests per second per pool and identifier; 0 turns the limit off. */
  perIdentifier: number;
  /** A bucket holds this many seconds' worth of its rate (at least one request). */
  burstSeconds: number;
  now: () => number;
}

/** Buckets kept per kind; beyond it the least recently used one is dropped. */
const MAX_BUCKETS = 100_000;

/** Token buckets keyed by string: `take` spends one token, or says how long until one is there. */
export class TokenBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly capacity: number;

  constructor(
    private readonly perSecond: number,
    burstSeconds: number,
    private readonly now: () => number,
  ) {
    this.capacity = Math.max(1, perSecond * burstSeconds);
  }

  /** 0 when the request may go, else the seconds until the key's bucket holds a token. */
  take(key: string): number {
    const now = this.now();
    const bucket = this.buckets.get(key);
    const refilled = bucket ? ((now - bucket.at) / 1000) * this.perSecond : this.capacity;
    const tokens = Math.min(this.capacity, (bucket?.tokens ?? 0) + refilled);
    // Re-inserting keeps the map in least-recently-used order for eviction.
    this.buckets.delete(key);
    if (this.buckets.size >= MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
    if (tokens >= 1) {
      this.buckets.set(key, { tokens: tokens - 1, at: now });
      return 0;
    }
    this.buckets.set(key, { tokens, at: now });
    return (1 - tokens) / this.perSecond;
  }
}

export class RateLimits {
  private readonly principals: TokenBuckets | undefined;
  private readonly identifiers: TokenBuckets | undefined;

  constructor(private readonly settings: RateLimitSettings) {
    const { perPrincipal, perIdentifier, burstSeconds, now } = settings;
    this.principals = perPrincipal > 0 ? new TokenBuckets(perPrincipal, burstSeconds, now) : undefined;
    this.identifiers = perIdentifier > 0 ? new TokenBuckets(perIdentifier, burstSeconds, now) : undefined;
  }

  /**
   * Throws RateLimitExceeded when the caller is over its limit. The caller is the credential at the
   * start of the principal's lineage: tokens and keys made from one key share its bucket.
   */
  checkCaller(principal: Principal): void {
    const wait = this.principals?.take(rootOf(principal)) ?? 0;
    if (wait > 0) {
      throw exceeded(`more than ${this.settings.perPrincipal} requests per second from this caller`, wait);
    }
  }

  /** Throws RateLimitExceeded when the identifier of the pool (its ARM id) is over its limit. */
  checkIdentifier(poolId: string, identifier: string): void {
    const wait = this.identifiers?.take(`${poolId}\n${identifier}`) ?? 0;
    if (wait > 0) {
      throw exceeded(
        `more than ${this.settings.perIdentifier} requests per second to this session identifier`,
        wait,
      );
    }
  }
}

function exceeded(message: string, waitSeconds: number): AppError {
  return new AppError(ErrorCode.RateLimitExceeded, `${message}; retry after the Retry-After seconds`, {
    details: { retryAfterSeconds: Math.ceil(waitSeconds) },
  });
}
