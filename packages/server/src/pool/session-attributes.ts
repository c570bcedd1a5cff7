/**
 * @module pool/session-attributes
 * What a session carries beyond its sandbox when a front door gave it more: E2B's create names the
 * template it came from, labels it (metadata, which its lists filter on), gives its commands and runs
 * an environment, and says who made it (whose credential its sandbox token stands for). Kept in the
 * session's row, sealed at rest (the environment may hold secrets).
 */

export interface SessionAttributes {
  /** The caller's labels, as E2B's metadata: listed, and filtered on. */
  metadata: Record<string, string>;
  /** Environment of every command and run in the session (E2B's envVars). */
  env: Record<string, string>;
  /** The principal that made the session, whose credential its sandbox token stands for. */
  creator: { id: string; keyId?: string; root?: string };
  /** When the session was made through E2B's API: its template (the pool's name) and its token's seed. */
  e2b?: { templateId: string; tokenSeed: string };
}

/** A session's attributes as its row keeps them; undefined for a row without (or with others). */
export function attributesOf(stored: unknown): SessionAttributes | undefined {
  if (typeof stored !== 'object' || stored === null) return undefined;
  const given = stored as Partial<SessionAttributes>;
  if (typeof given.creator?.id !== 'string') return undefined;
  return {
    metadata: given.metadata ?? {},
    env: given.env ?? {},
    creator: given.creator,
    ...(given.e2b && { e2b: given.e2b }),
  };
}
