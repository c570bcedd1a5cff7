import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import Fastify from 'fastify';

import { registerDashboard } from './dashboard.js';
import { registerErrorHandling } from './errors.js';

describe('dashboard routes', () => {
  it('says how to build the page when it is not built, at the page and below it', async () => {
    const app = Fastify({ routerOptions: { ignoreTrailingSlash: true } });
    registerErrorHandling(app, { poolFullStatus: 429 });
    await registerDashboard(app, '/nonexistent/dist');
    for (const url of ['/dashboard', '/dashboard/', '/dashboard/assets/app.js']) {
      const answer = await app.inject({ method: 'GET', url });
      assert.equal(answer.statusCode, 404, url);
      assert.equal(answer.json().error.code, 'RouteNotFound');
      assert.match(answer.json().error.message, /npm run build -w packages\/web/);
    }
    const root = await app.inject({ method: 'GET', url: '/' });
    assert.equal(root.statusCode, 302);
    assert.equal(root.headers.location, '/dashboard/');
    await app.close();
  });
});
