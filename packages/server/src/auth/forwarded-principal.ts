/**
 * @module auth/forwarded-principal
 * The caller's principal as one node hands it to another with a request it forwards (the session is
 * held there): already authenticated by the receiving node, signed with the cluster's forwarding
 * key (an HMAC-SHA256 key kept sealed in the shared store, so only nodes that hold the store and its
 * keyring can make one), bound to the request's method and URL, and good for 30 seconds. A client
 * that sends the header itself cannot sign it, and one copied from another request names another
 * URL. When the forwarding node placed a new session on the receiving node just now, the placement
 * travels with it, so the holder takes the sandbox up without placing it again.
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import { AppError, ErrorCode } from '../errors.js';
import type { SessionRow, Store } from '../store/store.js';
import type { Principal } from './roles.js';

/** What a forwarded request carries from the node that forwarded it. */
export interface Forwarded {
  principal: Principal;
  /** The session the forwarding node placed on this node for the request, if it placed one. */
  placed: SessionRow | undefined;
}

/** The header a forwarded request carries its principal in. */
export const FORWARDED_PRINCIPAL_HEADER = 'x-sandpool-forwarded-principal';

const KEY_SETTING = 'cluster.forwardingKey';
const LIFETIME_MS = 30_000;

export class ForwardedPrincipals {
  private constructor(
    private readonly key: Buffer,
    private readonly now: () => number,
  ) {}

  /** The cluster's key, made by the first node that needs it and read by the others. */
  static async fromStore(store: Store, now: () => number): Promise<ForwardedPrincipals> {
    const key = await store.initSetting(KEY_SETTING, randomBytes(32).toString('base64url'));
    return new ForwardedPrincipals(Buffer.from(key, 'base64url'), now);
  }

  sign(principal: Principal, request: { method: string; url: string }, placed?: SessionRow): string {
    const claims = Buffer.from(
      JSON.stringify({ principal, placed, expiresAt: this.now() + LIFETIME_MS }),
    ).toString('base64url');
    return `${claims}.${this.mac(claims, request).toString('base64url')}`;
  }

  /** What a cluster member signed for this very request; AuthenticationFailed otherwise. */
  verify(token: string, request: { method: string; url: string }): Forwarded {
    const [claims = '', signature = ''] = token.split('.');
    const expected = this.mac(claims, request);
    const given = Buffer.from(signature, 'base64url');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw refused('its signature is not the cluster’s, or it was made for another request');
    }
    const { principal, placed, expiresAt } = JSON.parse(Buffer.from(claims, 'base64url').toString()) as {
      principal: Principal;
      placed?: SessionRow;
      expiresAt: number;
    };
    if (expiresAt <= this.now()) throw refused('it has expired');
    return { principal, placed };
  }

  private mac(claims: string, request: { method: string; url: string }): Buffer {
    return createHmac('sha256', this.key).update(`${request.method}\n${request.url}\n${claims}`).digest();
  }
}

function refused(why: string): AppError {
  return new AppError(ErrorCode.AuthenticationFailed, `The forwarded principal is refused: ${why}.`);
}
