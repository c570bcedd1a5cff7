/**
 * @module api/upstream-request
 * One HTTP request passed on to a program in a sandbox through a host unix socket bridged to its
 * port (sandbox/oci/port-bridge): the session proxy's custom containers and E2B's sandbox ports.
 * Bodies stream both ways unbuffered; a client that leaves closes the program's side too.
 */

import {
  request as httpRequest,
  type Agent,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';

import { endToEnd } from './hop-by-hop.js';

export interface UpstreamHop {
  socketPath: string;
  /** Keep-alive connections through the bridge, one agent per upstream. */
  agent: Agent;
  /** The path (and query) the program gets. */
  path: string;
  headers: IncomingHttpHeaders;
  /** Headers Sandpool adds to the program's answer. */
  extraResponseHeaders?: Record<string, string>;
}

export interface UpstreamOutcome {
  /** `2xx`…`5xx` of the program's answer, `unreachable` when it gave none, `aborted` when the client left first. */
  outcome: string;
  /** Seconds until the program's head came, if it came. */
  responseSeconds: number | undefined;
}

/** The request's headers as the program gets them: hop-by-hop ones dropped, X-Forwarded-* added. */
export function forwardedHeaders(
  incoming: IncomingMessage,
  scheme: string,
  prefix: string | undefined,
): IncomingHttpHeaders {
  const headers = endToEnd(incoming);
  const client = incoming.socket.remoteAddress ?? '';
  const before = incoming.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = before ? `${String(before)}, ${client}` : client;
  headers['x-forwarded-proto'] = scheme;
  if (incoming.headers.host) headers['x-forwarded-host'] = incoming.headers.host;
  if (prefix !== undefined) headers['x-forwarded-prefix'] = prefix;
  return headers;
}

/**
 * Passes `req` on and `res` back; resolves once the answer has ended or the client has gone. When
 * the program gives no answer, `unreachable` says what the client gets instead.
 */
export function forwardUpstream(
  req: IncomingMessage,
  res: ServerResponse,
  hop: UpstreamHop,
  unreachable: (error: Error) => void,
): Promise<UpstreamOutcome> {
  return new Promise((resolve) => {
    const started = performance.now();
    let responseSeconds: number | undefined;
    let outcome = 'aborted';
    const outbound = httpRequest({
      socketPath: hop.socketPath,
      agent: hop.agent,
      method: req.method,
      path: hop.path,
      headers: hop.headers,
    });
    outbound.on('response', (answer) => {
      responseSeconds = (performance.now() - started) / 1000;
      outcome = `${String(Math.floor((answer.statusCode ?? 502) / 100))}xx`;
      // Node frames the body itself.
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, {
        ...endToEnd(answer, ['transfer-encoding']),
        ...hop.extraResponseHeaders,
      });
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    });
    outbound.on('error', (error) => {
      if (res.headersSent || res.destroyed) {
        res.destroy();
        return;
      }
      outcome = 'unreachable';
      unreachable(error);
    });
    res.on('close', () => {
      // The client left before the answer was complete: the program's side closes too.
      if (!res.writableFinished) outbound.destroy();
      resolve({ outcome, responseSeconds });
    });
    // The head goes now: a client that waits for the answer before sending its body must get one.
    outbound.flushHeaders();
    req.pipe(outbound);
  });
}
