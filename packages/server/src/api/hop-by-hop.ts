/**
 * @module api/hop-by-hop
 * What a relay (the session proxy to a container, a node forwarding to the node that holds a
 * session) passes on of a message's headers: the end-to-end ones (RFC 9110 §7.6.1), never the
 * caller's credential; and a response head written to a raw socket.
 */

import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';

/** Hop-by-hop headers, plus the credentials that must not travel on (Sandpool's, E2B's). */
const NOT_RELAYED = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'upgrade',
  'authorization',
  'x-api-key',
  'x-access-token',
  'e2b-traffic-access-token',
]);

/**
 * The end-to-end headers of a message: hop-by-hop ones, those its Connection header names, and
 * `also` dropped.
 */
export function endToEnd(message: IncomingMessage, also: readonly string[] = []): IncomingHttpHeaders {
  const named = new Set(
    (message.headers.connection ?? '')
      .split(',')
      .map((token) => token.trim().toLowerCase())
      .filter(Boolean),
  );
  const headers: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(message.headers)) {
    if (value === undefined || NOT_RELAYED.has(name) || named.has(name) || also.includes(name)) continue;
    headers[name] = value;
  }
  return headers;
}

/** A response head as it goes on the wire, for replies written to a raw socket. */
export function rawHead(status: string, rawHeaders: string[]): string {
  const lines = [`HTTP/1.1 ${status}`];
  for (let i = 0; i < rawHeaders.length; i += 2) lines.push(`${rawHeaders[i]!}: ${rawHeaders[i + 1]!}`);
  return `${lines.join('\r\n')}\r\n\r\n`;
}
