/**
 * @module pool/mcp-server-keys
 * The API key of a pool's platform MCP server (Azure's `fetchMcpServerCredentials` and
 * `rotateMcpServerCredentials`): made on first fetch, kept sealed in the shared store so every node
 * checks the same one, replaced at once on rotation. A key belongs to one incarnation of the pool
 * (its creation time is part of the name), so a pool created again under a deleted one's name never
 * answers to the old key.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { PoolRow, Store } from '../store/store.js';

const settingOf = (pool: PoolRow) => `mcp.apiKey:${pool.id}:${pool.createdAt}`;
const newKey = () => randomBytes(32).toString('base64url');
const digest = (text: string) => createHash('sha256').update(text).digest();

export class McpServerKeys {
  constructor(private readonly store: Store) {}

  /** The pool's key, made now if it has none. */
  fetch(pool: PoolRow): Promise<string> {
    return this.store.initSetting(settingOf(pool), newKey());
  }

  /** Replaces the pool's key; the old one is refused from now on, on every node. */
  async rotate(pool: PoolRow): Promise<string> {
    const key = newKey();
    await this.store.putSetting(settingOf(pool), key);
    return key;
  }

  /** Whether `given` is the pool's key (read from the store each time, so a rotation holds at once). */
  async verify(pool: PoolRow, given: string): Promise<boolean> {
    const key = await this.store.getSetting(settingOf(pool));
    return key !== undefined && timingSafeEqual(digest(key), digest(given));
  }
}
