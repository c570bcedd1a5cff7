/**
 * @module api/e2b/sandbox-routing
 * Where E2B's SDKs send a sandbox's own requests (envd on port 49983, the code interpreter on 49999,
 * the sandbox's programs on any other port): to one URL with the `E2b-Sandbox-Id` and
 * `E2b-Sandbox-Port` headers (current SDKs, `E2B_SANDBOX_URL`), or to the host name
 * `{port}-{sandboxId}.{domain}` (older SDKs, `getHost`). Either way the router takes the request as
 * `/e2b/sandbox/{port}{path}`, so the sandbox's routes are ordinary routes beside Azure's, declared
 * like them; the sandbox's id travels in the header (set from the host name when it came that way).
 */

import type { IncomingMessage } from 'node:http';

export const ENVD_PORT = 49983;
export const INTERPRETER_PORT = 49999;
export const SANDBOX_PREFIX = '/e2b/sandbox';
export const SANDBOX_ID_HEADER = 'e2b-sandbox-id';
const SANDBOX_PORT_HEADER = 'e2b-sandbox-port';

/** `{port}-{sandboxId}` as the first label of a host name: a port, and 20 of [a-z0-9]. */
const HOST_LABEL = /^(\d{1,5})-([a-z0-9]{20})\./;

/**
 * The URL the router takes a request at: a sandbox's request rewritten below SANDBOX_PREFIX,
 * anything else as it came. A request already below the prefix (one another node forwarded) is left.
 */
export function routedUrl(req: IncomingMessage): string {
  const url = req.url ?? '/';
  if (url.startsWith(`${SANDBOX_PREFIX}/`)) return url;
  let port = req.headers[SANDBOX_PORT_HEADER];
  if (typeof req.headers[SANDBOX_ID_HEADER] !== 'string') {
    const fromHost = HOST_LABEL.exec(req.headers.host ?? '');
    if (!fromHost) return url;
    req.headers[SANDBOX_ID_HEADER] = fromHost[2]!;
    port = fromHost[1]!;
  }
  const number = typeof port === 'string' && /^\d{1,5}$/.test(port) ? port : String(ENVD_PORT);
  return `${SANDBOX_PREFIX}/${number}${url.startsWith('/') ? url : `/${url}`}`;
}

/** The sandbox a request names (its header, or its host name through {@link routedUrl}). */
export function sandboxIdOf(headers: IncomingMessage['headers']): string | undefined {
  const id = headers[SANDBOX_ID_HEADER];
  return typeof id === 'string' ? id : undefined;
}
