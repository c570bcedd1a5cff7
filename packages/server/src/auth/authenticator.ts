/**
 * @module auth/authenticator
 * Turns a request's credential into a principal: an API key or a JWT, both as bearer tokens, or the
 * principal another node of the cluster authenticated and forwarded with the request.
 */

import type { IncomingHttpHeaders } from 'node:http';

import { AppError, ErrorCode } from '../errors.js';
import { looksLikeApiKey, type ApiKeys } from './api-keys.js';
import { FORWARDED_PRINCIPAL_HEADER, type ForwardedPrincipals } from './forwarded-principal.js';
import type { Principal } from './roles.js';
import type { Tokens } from './tokens.js';

export class Authenticator {
  constructor(
    private readonly apiKeys: ApiKeys,
    private readonly tokens: Tokens,
    private readonly forwarded: ForwardedPrincipals,
  ) {}

  /**
   * The request's principal, and whether a cluster member forwarded it (then it is served here, never
   * forwarded again).
   */
  async authenticateRequest(request: {
    headers: IncomingHttpHeaders;
    method: string;
    url: string;
  }): Promise<{ principal: Principal; forwarded: boolean }> {
    const token = request.headers[FORWARDED_PRINCIPAL_HEADER];
    if (typeof token === 'string')
      return { principal: this.forwarded.verify(token, request), forwarded: true };
    return { principal: await this.authenticate(request.headers.authorization), forwarded: false };
  }

  async authenticate(authorization: string | undefined): Promise<Principal> {
    if (!authorization) {
      throw new AppError(
        ErrorCode.AuthenticationFailed,
        'Authentication failed. The Authorization header is missing: send "Authorization: Bearer <API key or token>".',
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match) {
      throw new AppError(
        ErrorCode.AuthenticationFailed,
        'Authentication failed. The Authorization header must be "Bearer <API key or token>".',
      );
    }
    const credential = match[1]!;
    return looksLikeApiKey(credential) ? this.apiKeys.verify(credential) : this.tokens.verify(credential);
  }
}
