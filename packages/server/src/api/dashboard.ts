/**
 * @module api/dashboard
 * Serves the web dashboard (packages/web, built by Vite) at `/dashboard/`. The page itself is
 * public: it holds no data and signs in with a token, then reads everything through the API as
 * that principal. Vite names assets by content hash, so they are cached for good; index.html never
 * is. A strict Content-Security-Policy keeps the token-holding page to its own scripts.
 */

import { existsSync } from 'node:fs';
import { join } from 'node:path';

import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

import { AppError, ErrorCode } from '../errors.js';

export const DASHBOARD_PREFIX = '/dashboard/';

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export async function registerDashboard(app: FastifyInstance, dir: string): Promise<void> {
  const hidden = { schema: { hide: true }, config: { access: 'public' as const } };
  app.get('/', hidden, (_request, reply) => reply.redirect(DASHBOARD_PREFIX));
  // The router ignores trailing slashes, so `/dashboard/` reaches this route, never the wildcard.
  const page = '/dashboard';
  if (!existsSync(join(dir, 'index.html'))) {
    const notBuilt = () => {
      throw new AppError(
        ErrorCode.RouteNotFound,
        `The dashboard is not built (no ${join(dir, 'index.html')}): run \`npm run build -w packages/web\`.`,
      );
    };
    app.get(page, hidden, notBuilt);
    app.get(`${DASHBOARD_PREFIX}*`, hidden, notBuilt);
    return;
  }
  // The page and its assets are public: the page signs in itself and reads everything through the API.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith(DASHBOARD_PREFIX)) route.config = { ...route.config, access: 'public' };
  });
  await app.register(fastifyStatic, {
    root: dir,
    prefix: DASHBOARD_PREFIX,
    schemaHide: true,
    index: false,
    cacheControl: false,
    setHeaders(response, path) {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.setHeader(name, value);
      response.setHeader(
        'cache-control',
        path.includes(`${join(dir, 'assets')}/`) ? 'public, max-age=31536000, immutable' : 'no-cache',
      );
    },
  });
  app.get(page, hidden, (_request, reply) => reply.sendFile('index.html'));
}
