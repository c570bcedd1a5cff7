/**
 * @module api/e2b/sandbox-credential
 * Who a request to a sandbox's own routes stands for (the request path's `sandbox` access): its
 * envd access token (`X-Access-Token`), its traffic token (`E2B-Traffic-Access-Token`), or, for a
 * `/files` URL E2B's SDKs signed, the signature made with the access token. A signed URL made for
 * one sandbox URL names no sandbox; the sandbox whose token made the signature is the one it is for,
 * and the request is taken on as if it had named it.
 */

import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

import type { Principal } from '../../auth/roles.js';
import type { SandboxTokens } from '../../auth/sandbox-tokens.js';
import { AppError, ErrorCode } from '../../errors.js';
import type { E2bSandbox, E2bSandboxes } from '../../pool/e2b-sandboxes.js';
import { sandboxNotRunning } from './sandbox-reach.js';
import { SANDBOX_ID_HEADER, sandboxIdOf } from './sandbox-routing.js';

export interface SandboxCredentialDeps {
  sandboxes: E2bSandboxes;
  tokens: SandboxTokens;
  now: () => number;
}

interface SignedFile {
  path: string;
  operation: 'read' | 'write';
  user: string;
  signature: string;
  expiration: string | undefined;
}

/** The signed-URL parts of a `/files` request, if it is one. */
function signedFileOf(method: string, url: string): SignedFile | undefined {
  const [path, search] = url.split('?', 2);
  if (search === undefined || !(path ?? '').endsWith('/files')) return undefined;
  const query = new URLSearchParams(search);
  const signature = query.get('signature');
  if (signature === null) return undefined;
  return {
    path: query.get('path') ?? '',
    operation: method === 'POST' ? 'write' : 'read',
    user: query.get('username') ?? '',
    signature,
    expiration: query.get('signature_expiration') ?? undefined,
  };
}

/** E2B's signature: `v1_` and the unpadded base64 SHA-256 of path, operation, user, token (and expiry). */
function signatureFor(signed: SignedFile, accessToken: string): string {
  const parts = [signed.path, signed.operation, signed.user, accessToken];
  if (signed.expiration !== undefined) parts.push(signed.expiration);
  return `v1_${createHash('sha256').update(parts.join(':')).digest('base64').replace(/=+$/, '')}`;
}

const sameText = (a: string, b: string) => {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
};

export function sandboxCredential(deps: SandboxCredentialDeps) {
  const { sandboxes, tokens } = deps;

  const verifySigned = async (signed: SignedFile, sandbox: E2bSandbox): Promise<Principal> => {
    if (signed.expiration !== undefined) {
      const seconds = Number(signed.expiration);
      if (!Number.isInteger(seconds) || seconds * 1000 < deps.now()) {
        throw new AppError(ErrorCode.AuthenticationFailed, 'The signed URL has expired.');
      }
    }
    const accessToken = tokens.accessToken(sandbox.claims);
    if (!sameText(signatureFor(signed, accessToken), signed.signature)) {
      throw new AppError(
        ErrorCode.AuthenticationFailed,
        'The signature does not match the file, operation or user.',
      );
    }
    return tokens.verify('access', accessToken, sandbox.claims);
  };

  // `takesTraffic`: the route takes the traffic token too (its declared access, `sandboxTraffic`);
  // envd and code runs do not: the traffic token, which a client may hand on, runs no code.
  return async (
    request: { headers: IncomingHttpHeaders; method: string; url: string },
    takesTraffic: boolean,
  ): Promise<Principal> => {
    const { headers } = request;
    const signed = signedFileOf(request.method, request.url);
    const sandboxId = sandboxIdOf(headers);
    if (sandboxId === undefined) {
      if (!signed) throw new AppError(ErrorCode.AuthenticationFailed, 'The request names no sandbox.');
      // The sandbox whose token made the signature: one hash for each that lives.
      for (const sandbox of await sandboxes.list()) {
        if (sameText(signatureFor(signed, tokens.accessToken(sandbox.claims)), signed.signature)) {
          headers[SANDBOX_ID_HEADER] = sandbox.sandboxId;
          return verifySigned(signed, sandbox);
        }
      }
      throw new AppError(ErrorCode.AuthenticationFailed, 'The signature belongs to no sandbox that runs.');
    }
    const sandbox = await sandboxes.find(sandboxId);
    if (!sandbox) throw sandboxNotRunning(sandboxId);
    const access = headers['x-access-token'];
    if (typeof access === 'string') return tokens.verify('access', access, sandbox.claims);
    const traffic = headers['e2b-traffic-access-token'];
    if (typeof traffic === 'string' && takesTraffic) {
      return tokens.verify('traffic', traffic, sandbox.claims);
    }
    if (signed) return verifySigned(signed, sandbox);
    throw new AppError(
      ErrorCode.AuthenticationFailed,
      takesTraffic
        ? 'The sandbox’s ports and contexts take its traffic token (E2B-Traffic-Access-Token) or its access token (X-Access-Token).'
        : 'envd and code runs take the sandbox’s access token (X-Access-Token).',
    );
  };
}
