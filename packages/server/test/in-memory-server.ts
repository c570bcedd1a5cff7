/**
 * A Sandpool server without sandboxes, for fast tests of its clients (the SDK, the CLI): the real app
 * over a real SQLite store, instances from the {@link FakeLauncher}, reached through a fetch that
 * hands each request to the app in process (Fastify's inject), so no request crosses a socket and
 * nothing needs root. The end-to-end tests of the same features run against real sandboxes.
 */

import type { FastifyInstance } from 'fastify';

import { FakeLauncher } from './fake-launcher.js';
import { startTestServer, type TestServer } from './server-harness.js';

export interface InMemoryServer {
  /** The server's public URL: what links it hands out (nextLink, operation status) start with. */
  endpoint: string;
  /** A fetch that serves each request in process. */
  fetch: typeof fetch;
  launcher: FakeLauncher;
  server: TestServer;
}

/** Serves a fetch's requests with the app's `inject`, headers and body as they would travel. */
export function injectFetch(app: FastifyInstance): typeof fetch {
  return async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    const body = request.body ? Buffer.from(await request.arrayBuffer()) : undefined;
    const answer = await app.inject({
      method: request.method as 'GET',
      url: `${url.pathname}${url.search}`,
      headers: Object.fromEntries(request.headers),
      ...(body && { payload: body }),
    });
    const headers = new Headers();
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined) continue;
      for (const one of [value].flat()) headers.append(name, String(one));
    }
    const bodiless = [204, 205, 304].includes(answer.statusCode) || request.method === 'HEAD';
    return new Response(bodiless ? null : answer.rawPayload, { status: answer.statusCode, headers });
  };
}

export async function startInMemoryServer(name: string): Promise<InMemoryServer> {
  const launcher = new FakeLauncher();
  const server = await startTestServer(name, { launcher });
  return { endpoint: server.url, fetch: injectFetch(server.server.app), launcher, server };
}
