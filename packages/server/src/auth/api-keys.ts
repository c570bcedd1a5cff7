/**
 * @module auth/api-keys
 * API keys: `sp_<id>_<secret>`, 32 random bytes of secret. The store keeps the id and the SHA-256 of
 * the secret, never the secret; verification compares hashes in constant time. Every key is held in
 * memory (loaded at start, refreshed from the store every few seconds), so neither a key nor a token
 * derived from one costs a store read on the hot path, and a revocation made by another process
 * sharing the store arrives within one refresh. Revocations are announced to listeners, which close
 * the long-lived connections the key, or a credential derived from it, opened.
 *
 * A key made by a derived credential (a token, or a key such a token made) is derived too: it names
 * the key its maker came from (`parentKeyId`) and stops working with it, and it expires no later than
 * its maker. A key made by a key of its own standing is a peer, managed on its own.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { AppError, ErrorCode } from '../errors.js';
import type { ApiKeyRow, Store } from '../store/store.js';
import { formatGrant, parseGrants, type Grant, type Principal } from './roles.js';

const KEY_PATTERN = /^sp_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** E2B's SDKs accept only keys of this shape: a Sandpool key written out in hex (see e2bFormOf). */
const E2B_KEY_PATTERN = /^e2b_([0-9a-f]{12})([0-9a-f]{64})$/;

export const looksLikeApiKey = (token: string) => token.startsWith('sp_') || token.startsWith('e2b_');

/**
 * A key in the shape E2B's SDKs check before they send it (`e2b_` and hex): the same key, its id and
 * its secret's bytes in hex; either form is accepted wherever a key is.
 */
export function e2bFormOf(secret: string): string {
  const match = KEY_PATTERN.exec(secret);
  if (!match) throw new AppError(ErrorCode.InvalidParameter, 'not a Sandpool API key');
  return `e2b_${match[1]!}${Buffer.from(match[2]!, 'base64url').toString('hex')}`;
}

/** The Sandpool form of a key given in E2B's form; the key itself otherwise. */
function sandpoolFormOf(token: string): string {
  const match = E2B_KEY_PATTERN.exec(token);
  return match ? `sp_${match[1]!}_${Buffer.from(match[2]!, 'hex').toString('base64url')}` : token;
}

/** How often keys are read again from the store: the longest a revocation takes to reach this process. */
const KEY_REFRESH_MS = 5_000;

/** The longest chain of keys made by derived credentials that is followed; a longer one is refused. */
const MAX_LINEAGE = 32;

export class ApiKeys {
  private readonly cache = new Map<string, ApiKeyRow>();
  private readonly revocationListeners: ((keyId: string) => void)[] = [];
  private refresher: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  /** Loads every key and keeps them fresh; call once before serving. */
  async start(): Promise<void> {
    await this.refresh();
    this.refresher = setInterval(() => {
      this.refresh().catch(() => undefined);
    }, KEY_REFRESH_MS);
    this.refresher.unref();
  }

  stop(): void {
    clearInterval(this.refresher);
  }

  /** Calls `listener` with the id of every key revoked from now on. */
  onRevoked(listener: (keyId: string) => void): void {
    this.revocationListeners.push(listener);
  }

  /**
   * Whether the key exists, is neither revoked nor expired, and neither is any key it was derived
   * from: what every credential derived from it depends on. Only a key this process has never seen
   * (made by another process moments ago) costs a store read.
   */
  async isActive(id: string): Promise<boolean> {
    let key = await this.get(id);
    for (let depth = 0; key !== undefined && depth < MAX_LINEAGE; depth++) {
      if (key.revokedAt !== null || this.expired(key)) return false;
      if (key.parentKeyId === null) return true;
      key = await this.get(key.parentKeyId);
    }
    return false;
  }

  private expired(key: ApiKeyRow): boolean {
    return key.expiresAt !== null && Date.parse(key.expiresAt) <= this.now();
  }

  /** The key with this id, from memory (the store only for one this process has not seen). */
  async get(id: string): Promise<ApiKeyRow | undefined> {
    const cached = this.cache.get(id);
    if (cached) return cached;
    const stored = await this.store.getApiKey(id);
    if (stored) this.remember(stored);
    return stored;
  }

  private async refresh(): Promise<void> {
    for (const key of await this.store.listApiKeys()) this.remember(key);
  }

  /** Caches the key, announcing it when this is the first time it is seen revoked. */
  private remember(key: ApiKeyRow): void {
    const before = this.cache.get(key.id);
    this.cache.set(key.id, key);
    if (key.revokedAt !== null && before !== undefined && before.revokedAt === null) {
      this.announceRevoked(key.id);
    }
  }

  /** Tells the listeners the key is revoked, and every key derived from it with it. */
  private announceRevoked(id: string): void {
    const ended = new Set([id]);
    // Keys derived from keys derived from it, breadth first: a lineage is short.
    for (let grew = true; grew;) {
      grew = false;
      for (const key of this.cache.values()) {
        if (key.parentKeyId !== null && ended.has(key.parentKeyId) && !ended.has(key.id)) {
          ended.add(key.id);
          grew = true;
        }
      }
    }
    for (const keyId of ended) for (const listener of this.revocationListeners) listener(keyId);
  }

  /**
   * Creates a key; the returned secret is shown once and never stored. A key its `maker` makes while
   * itself derived (a token, or a key with a parent or an expiry) dies with the maker's key and
   * expires with the maker.
   */
  async create(
    name: string,
    grants: Grant[],
    options: { maker?: Principal; secret?: string } = {},
  ): Promise<{ key: ApiKeyRow; secret: string }> {
    const secretText = options.secret;
    const secret =
      secretText ?? `sp_${randomBytes(6).toString('hex')}_${randomBytes(32).toString('base64url')}`;
    const match = KEY_PATTERN.exec(secret);
    if (!match)
      throw new AppError(ErrorCode.InvalidParameter, 'an API key must look like sp_<12 hex>_<43 base64url>');
    const key: ApiKeyRow = {
      id: match[1]!,
      name,
      secretHash: sha256(match[2]!).toString('hex'),
      roles: grants.map(formatGrant),
      createdAt: new Date(this.now()).toISOString(),
      revokedAt: null,
      ...lineageOf(options.maker),
    };
    await this.store.putApiKey(key);
    this.cache.set(key.id, key);
    return { key, secret };
  }

  list(): Promise<ApiKeyRow[]> {
    return this.store.listApiKeys();
  }

  async revoke(id: string): Promise<ApiKeyRow> {
    const key = await this.store.getApiKey(id);
    if (!key) throw new AppError(ErrorCode.ApiKeyNotFound, `no API key with id ${id}`);
    const revoked = { ...key, revokedAt: key.revokedAt ?? new Date(this.now()).toISOString() };
    await this.store.putApiKey(revoked);
    this.remember(revoked);
    return revoked;
  }

  /** The principal behind a key, or AuthenticationFailed. */
  async verify(token: string): Promise<Principal> {
    const match = KEY_PATTERN.exec(sandpoolFormOf(token));
    // Made only when thrown: an error's stack costs more than the rest of a valid key's check.
    const rejected = () =>
      new AppError(ErrorCode.AuthenticationFailed, 'The API key is not valid or has been revoked.');
    if (!match) throw rejected();
    const id = match[1]!;
    const key = await this.get(id);
    const expected = Buffer.from(key?.secretHash ?? '0'.repeat(64), 'hex');
    const matches = timingSafeEqual(expected, sha256(match[2]!));
    if (!key || !matches) throw rejected();
    if (key.revokedAt !== null || key.parentKeyId !== null || key.expiresAt !== null) {
      if (!(await this.isActive(id))) throw rejected();
    }
    return {
      id: `key:${id}`,
      grants: parseGrants(key.roles),
      keyId: id,
      ...(key.expiresAt !== null && { expiresAt: Date.parse(key.expiresAt) }),
      ...(key.parentKeyId !== null && { derived: true, root: `key:${this.lineageRoot(key)}` }),
    };
  }

  /** The id of the key at the start of the key's lineage (its own when it has no parent). */
  private lineageRoot(key: ApiKeyRow): string {
    let at = key;
    for (let depth = 0; at.parentKeyId !== null && depth < MAX_LINEAGE; depth++) {
      const parent = this.cache.get(at.parentKeyId);
      if (!parent) return at.parentKeyId;
      at = parent;
    }
    return at.id;
  }
}

/**
 * Where a new key stands: a maker that is itself derived passes on its key (a token's root key, or
 * the derived key itself) and its expiry; a key of its own standing, or no maker (the bootstrap key),
 * passes on nothing.
 */
function lineageOf(maker: Principal | undefined): Pick<ApiKeyRow, 'parentKeyId' | 'expiresAt'> {
  if (maker === undefined || !isDerived(maker)) return { parentKeyId: null, expiresAt: null };
  return {
    parentKeyId: maker.keyId ?? null,
    expiresAt: maker.expiresAt === undefined ? null : new Date(maker.expiresAt).toISOString(),
  };
}

/** A credential that came from another: a token (it expires) or a key made by one. */
const isDerived = (principal: Principal) => principal.expiresAt !== undefined || principal.derived === true;
