/**
 * @module auth/tokens
 * Bearer JWTs, verified with jose: those this server issues itself (ES256, key kept in the store) and
 * those of configured OIDC issuers (keys fetched from their JWKS). A token must carry one of the
 * accepted audiences (Azure's `https://dynamicsessions.io` and the legacy `https://acasessions.io` by
 * default); its `roles` claim lists grants in the `Role[:<ARM id>]` form.
 *
 * A token is derived from the credential that asked for it and never outlives or outranks it: its
 * grants are a subset of the parent's (checked by the route), it expires no later than the parent,
 * and a token whose chain starts at an API key names that key (`key` claim) and stops working the
 * moment the key is revoked.
 */

import {
  SignJWT,
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeJwt,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose';

import type { OidcIssuerConfig } from '../config.js';
import { AppError, ErrorCode } from '../errors.js';
import type { Store } from '../store/store.js';
import { formatGrant, parseGrants, rootOf, type Grant, type Principal } from './roles.js';

export const LOCAL_ISSUER = 'sandpool';
const SIGNING_KEY_SETTING = 'tokens.signingKey';
const MAX_TTL_SECONDS = 24 * 3600;

type SigningKey = Awaited<ReturnType<typeof importJWK>>;

interface Issuer {
  keys: JWTVerifyGetKey;
  rolesClaim: string;
}

/** Other applications' roles may share the claim; they grant nothing here. */
function grantsFrom(claim: unknown): Grant[] {
  return parseGrants(Array.isArray(claim) ? claim : typeof claim === 'string' ? claim.split(/[ ,]+/) : []);
}

export class Tokens {
  private constructor(
    private readonly signingKey: SigningKey,
    private readonly issuers: Map<string, Issuer>,
    private readonly audiences: string[],
    private readonly now: () => number,
    private readonly isKeyActive: (keyId: string) => Promise<boolean>,
  ) {}

  static async create(options: {
    store: Store;
    audiences: string[];
    oidcIssuers: OidcIssuerConfig[];
    now: () => number;
    /** Whether an API key still stands; tokens derived from a revoked one stop working. */
    isKeyActive: (keyId: string) => Promise<boolean>;
  }): Promise<Tokens> {
    let privateJwk: JWK;
    const stored = await options.store.getSetting(SIGNING_KEY_SETTING);
    if (stored) {
      privateJwk = JSON.parse(stored) as JWK;
    } else {
      const pair = await generateKeyPair('ES256', { extractable: true });
      privateJwk = await exportJWK(pair.privateKey);
      await options.store.putSetting(SIGNING_KEY_SETTING, JSON.stringify(privateJwk));
    }
    const signingKey = await importJWK({ ...privateJwk, alg: 'ES256' }, 'ES256');
    // The public half: the same JWK without its private scalar `d`.
    const publicJwk = Object.fromEntries(Object.entries(privateJwk).filter(([name]) => name !== 'd')) as JWK;
    const issuers = new Map<string, Issuer>([
      [
        LOCAL_ISSUER,
        { keys: createLocalJWKSet({ keys: [{ ...publicJwk, alg: 'ES256' }] }), rolesClaim: 'roles' },
      ],
    ]);
    for (const oidc of options.oidcIssuers) {
      issuers.set(oidc.issuer, {
        keys: createRemoteJWKSet(new URL(oidc.jwksUri)),
        rolesClaim: oidc.rolesClaim,
      });
    }
    // Clients spell audiences with and without a trailing slash.
    const audiences = options.audiences.flatMap((a) => [a.replace(/\/+$/, ''), `${a.replace(/\/+$/, '')}/`]);
    return new Tokens(signingKey, issuers, audiences, options.now, options.isKeyActive);
  }

  /**
   * A short-lived token derived from `parent`, carrying `grants` (the caller has checked they are
   * the parent's to give), signed by this server. It expires after `ttlSeconds` or with its parent,
   * whichever comes first.
   */
  async issue(
    parent: Principal,
    grants: Grant[],
    ttlSeconds: number,
  ): Promise<{ token: string; expiresAt: string }> {
    if (!Number.isInteger(ttlSeconds) || ttlSeconds < 60 || ttlSeconds > MAX_TTL_SECONDS) {
      throw new AppError(
        ErrorCode.InvalidParameter,
        `expiresInSeconds must be an integer from 60 to ${MAX_TTL_SECONDS}`,
        {
          target: 'expiresInSeconds',
        },
      );
    }
    const issuedAt = Math.floor(this.now() / 1000);
    const parentExpiry =
      parent.expiresAt === undefined ? Number.POSITIVE_INFINITY : Math.floor(parent.expiresAt / 1000);
    const expiresAt = Math.min(issuedAt + ttlSeconds, parentExpiry);
    const token = await new SignJWT({
      roles: grants.map(formatGrant),
      ...(parent.keyId !== undefined && { key: parent.keyId }),
      root: rootOf(parent),
    })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT' })
      .setIssuer(LOCAL_ISSUER)
      .setSubject(parent.id)
      .setAudience(this.audiences[0]!)
      .setIssuedAt(issuedAt)
      .setExpirationTime(expiresAt)
      .sign(this.signingKey);
    return { token, expiresAt: new Date(expiresAt * 1000).toISOString() };
  }

  async verify(token: string): Promise<Principal> {
    let issuerName: string | undefined;
    try {
      issuerName = decodeJwt(token).iss;
    } catch {
      throw new AppError(ErrorCode.AuthenticationFailed, 'The access token is not a valid JWT or API key.');
    }
    const issuer = issuerName === undefined ? undefined : this.issuers.get(issuerName);
    if (!issuer) {
      throw new AppError(
        ErrorCode.AuthenticationFailed,
        `The access token's issuer ${JSON.stringify(issuerName)} is not trusted by this server.`,
      );
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, issuer.keys, {
        issuer: issuerName!,
        audience: this.audiences,
        currentDate: new Date(this.now()),
      }));
    } catch (cause) {
      throw new AppError(
        ErrorCode.AuthenticationFailed,
        `The access token is invalid: ${(cause as Error).message}`,
        { cause },
      );
    }
    // Only this server's own tokens can name one of its keys, or the credential they started from.
    const local = issuerName === LOCAL_ISSUER;
    const keyId = local && typeof payload.key === 'string' ? payload.key : undefined;
    const root = local && typeof payload.root === 'string' ? payload.root : undefined;
    if (keyId !== undefined && !(await this.isKeyActive(keyId))) {
      throw new AppError(
        ErrorCode.AuthenticationFailed,
        'The access token was derived from an API key that has been revoked.',
      );
    }
    return {
      id: `${issuerName!}#${payload.sub ?? 'unknown'}`,
      grants: grantsFrom(payload[issuer.rolesClaim]),
      ...(keyId !== undefined && { keyId }),
      ...(root !== undefined && { root }),
      ...(payload.exp !== undefined && { expiresAt: payload.exp * 1000 }),
    };
  }
}
