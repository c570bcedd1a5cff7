/**
 * @module auth/sandbox-tokens
 * The credentials E2B's SDKs present to a sandbox itself: its envd access token (`X-Access-Token`,
 * for its processes, files and code runs) and its traffic token (`e2b-traffic-access-token`, for
 * the ports its programs listen on). Each is an HMAC-SHA256 of what the sandbox was made with — its
 * id, its pool, who made it and a seed of its own — under the cluster's key (kept sealed in the
 * shared store), so any node checks one without reading the store, and the same sandbox always
 * gets the same token: a node can find the sandbox a signed `/files` URL belongs to by computing it.
 *
 * A sandbox token stands for the principal that made the sandbox, narrowed to that one sandbox: it
 * dies with that principal's key (and with anything the key came from), and never reaches another
 * sandbox, even of the same pool.
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import { AppError, ErrorCode } from '../errors.js';
import type { Store } from '../store/store.js';
import type { Principal } from './roles.js';

const KEY_SETTING = 'e2b.sandboxTokenKey';

/** What a sandbox's tokens are made of: all of it kept with the session, none of it secret alone. */
export interface SandboxClaims {
  sandboxId: string;
  /** The ARM id of the sandbox's pool. */
  poolId: string;
  /** Who made the sandbox. */
  creator: { id: string; keyId?: string; root?: string };
  /** Random, per sandbox: no two sandboxes' tokens are alike. */
  seed: string;
}

export const newTokenSeed = () => randomBytes(16).toString('base64url');

export class SandboxTokens {
  private constructor(
    private readonly key: Buffer,
    private readonly isKeyActive: (keyId: string) => Promise<boolean>,
  ) {}

  /** The cluster's key, made by the first node that needs it and read by the others. */
  static async fromStore(
    store: Store,
    isKeyActive: (keyId: string) => Promise<boolean>,
  ): Promise<SandboxTokens> {
    const key = await store.initSetting(KEY_SETTING, randomBytes(32).toString('base64url'));
    return new SandboxTokens(Buffer.from(key, 'base64url'), isKeyActive);
  }

  /** The sandbox's envd access token. */
  accessToken(claims: SandboxClaims): string {
    return this.mac('access', claims);
  }

  /** The token for the sandbox's own ports. */
  trafficToken(claims: SandboxClaims): string {
    return this.mac('traffic', claims);
  }

  /**
   * The principal a token presented for the sandbox stands for: its maker, with Session Executor on
   * the sandbox's pool and nothing else; AuthenticationFailed for a wrong token or a revoked maker.
   */
  async verify(kind: 'access' | 'traffic', token: string, claims: SandboxClaims): Promise<Principal> {
    const expected = Buffer.from(this.mac(kind, claims));
    const given = Buffer.from(token);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new AppError(ErrorCode.AuthenticationFailed, `The sandbox's ${kind} token is wrong.`);
    }
    const { creator } = claims;
    if (creator.keyId !== undefined && !(await this.isKeyActive(creator.keyId))) {
      throw new AppError(
        ErrorCode.AuthenticationFailed,
        'The sandbox was made with an API key that has been revoked: its tokens are too.',
      );
    }
    return {
      id: creator.id,
      grants: [{ role: 'SessionExecutor', scope: claims.poolId }],
      ...(creator.keyId !== undefined && { keyId: creator.keyId }),
      root: creator.root ?? creator.id,
      sandbox: claims.sandboxId,
    };
  }

  private mac(kind: string, claims: SandboxClaims): string {
    const text = [
      kind,
      claims.sandboxId,
      claims.poolId,
      claims.creator.id,
      claims.creator.keyId ?? '',
      claims.seed,
    ];
    return createHmac('sha256', this.key).update(text.join('\n')).digest('base64url');
  }
}
