/**
 * @module auth/authenticator
 * Turns a request's credential into a principal: an API key or a JWT, both as bearer tokens, or the
 * principal another node of the cluster authenticated and forwarded with the request.
 */

import type { IncomingHttpHeaders } from 'node:http';

import { AppError, ErrorCode } from '../errors.js';
import { looksLikeApiKey, type ApiKeys } from './api-keys.js';
import {
  FORWARDED_PRINCIPAL_HEADER,
  type Forwarded,
  type ForwardedPrincipals,
} from './forwarded-principal.js';
import type { Principal } from './roles.js';
import type { Tokens } from './tokens.js';

export class Authenticator {
  constructor(
    private readonly apiKeys: ApiKeys,
    private readonly tokens: Tokens,
    private readonly forwarded: ForwardedPrincipals,
  ) {}

  /**
   * The request's principal and, for a request a cluster member forwarded (then it is served here,
   * never forwarded again), what that member signed with it.
   */
  async authenticateRequest(request: {
    headers: IncomingHttpHeaders;
    method: string;
    url: string;
  }): Promise<{ principal: Principal; forwarded: Forwarded | undefined }> {
    const token = request.headers[FORWARDED_PRINCIPAL_HEADER];
    if (typeof token === 'string') {
      const forwarded = this.forwarded.verify(token, request);
      return { principal: forwarded.principal, forwarded };
    }
    // E2B's SDKs send the key in X-API-KEY; a bearer credential wins when both come.
    const apiKey = request.headers['x-api-key'];
    const authorization =
      request.headers.authorization ?? (typeof apiKey === 'string' ? `Bearer ${apiKey}` : undefined);
    return { principal: await this.authenticate(authorization), forwarded: undefined };
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
