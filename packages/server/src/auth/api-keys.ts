/**
 * @module auth/api-keys
 * API keys: `sp_<id>_<secret>`, 32 random bytes of secret. The store keeps the id and the SHA-256 of
 * the secret, never the secret; verification compares hashes in constant time. Keys are cached in
 * memory after first use so the hot path does not read the store.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import { AppError, ErrorCode } from '../errors.js';
import type { ApiKeyRow, Store } from '../store/store.js';
import { formatGrant, parseGrant, type Grant, type Principal } from './roles.js';

const KEY_PATTERN = /^sp_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

const sha256 = (text: string) => createHash('sha256').update(text).digest();

export const looksLikeApiKey = (token: string) => token.startsWith('sp_');

export class ApiKeys {
  private readonly cache = new Map<string, ApiKeyRow>();

  constructor(
    private readonly store: Store,
    private readonly now: () => number,
  ) {}

  /** Creates a key; the returned secret is shown once and never stored. */
  async create(
    name: string,
    grants: Grant[],
    secretText?: string,
  ): Promise<{ key: ApiKeyRow; secret: string }> {
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
    this.cache.set(id, revoked);
    return revoked;
  }

  /** The principal behind a key, or AuthenticationFailed. */
  async verify(token: string): Promise<Principal> {
    const match = KEY_PATTERN.exec(token);
    const rejected = new AppError(
      ErrorCode.AuthenticationFailed,
      'The API key is not valid or has been revoked.',
    );
    if (!match) throw rejected;
    const id = match[1]!;
    let key = this.cache.get(id);
    if (!key) {
      key = await this.store.getApiKey(id);
      if (key) this.cache.set(id, key);
    }
    const expected = Buffer.from(key?.secretHash ?? '0'.repeat(64), 'hex');
    const matches = timingSafeEqual(expected, sha256(match[2]!));
    if (!key || !matches || key.revokedAt !== null) throw rejected;
    return { id: `key:${id}`, grants: key.roles.map(parseGrant) };
  }
}
