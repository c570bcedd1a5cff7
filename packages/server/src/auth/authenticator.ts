/**
 * @module auth/authenticator
 * Turns an `Authorization` header into a principal: an API key or a JWT, both as bearer tokens.
 */

import { AppError, ErrorCode } from '../errors.js';
import { looksLikeApiKey, type ApiKeys } from './api-keys.js';
import type { Principal } from './roles.js';
import type { Tokens } from './tokens.js';

export class Authenticator {
  constructor(
    private readonly apiKeys: ApiKeys,
    private readonly tokens: Tokens,
  ) {}

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
