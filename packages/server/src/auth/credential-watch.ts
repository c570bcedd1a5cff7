/**
 * @module auth/credential-watch
 * Ends long-lived connections (event streams, proxied WebSockets and streams) when the credential
 * that opened them stops working: at once when its API key, or the key its token was derived from,
 * is revoked, and when the credential expires. A request is authenticated once, at its start; this
 * is what keeps a connection that outlives that moment honest.
 */

import type { Principal } from './roles.js';

/** setTimeout's ceiling (about 24.8 days); a later expiry is re-armed when it passes. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export type CredentialEnd = 'revoked' | 'expired';

export class CredentialWatch {
  private readonly byKey = new Map<string, Set<(why: CredentialEnd) => void>>();

  constructor(private readonly now: () => number) {}

  /**
   * Calls `end` once when the principal's credential is revoked or expires. Returns the function
   * that stops watching (call it when the connection closes for any other reason).
   */
  watch(principal: Principal, end: (why: CredentialEnd) => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (why: CredentialEnd) => {
      if (done) return;
      stop();
      end(why);
    };
    const stop = () => {
      done = true;
      clearTimeout(timer);
      if (principal.keyId !== undefined) {
        const listeners = this.byKey.get(principal.keyId);
        listeners?.delete(finish);
        if (listeners?.size === 0) this.byKey.delete(principal.keyId);
      }
    };
    if (principal.keyId !== undefined) {
      const listeners = this.byKey.get(principal.keyId) ?? new Set();
      listeners.add(finish);
      this.byKey.set(principal.keyId, listeners);
    }
    if (principal.expiresAt !== undefined) {
      const arm = () => {
        const left = principal.expiresAt! - this.now();
        if (left <= 0) return finish('expired');
        timer = setTimeout(arm, Math.min(left, MAX_TIMER_MS));
        timer.unref();
      };
      arm();
    }
    return stop;
  }

  /** Ends every connection opened with the key, or with a token derived from it. */
  revoked(keyId: string): void {
    for (const finish of [...(this.byKey.get(keyId) ?? [])]) finish('revoked');
  }
}
