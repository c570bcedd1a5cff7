import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import Fastify, { type FastifyReply } from 'fastify';
import { Type } from 'typebox';

import { checkResponses } from './response-contract.js';

describe('response contract check', () => {
  const Thing = Type.Object({ name: Type.String() }, { $id: 'Thing' });

  async function appReturning(status: 200 | 201 | 202, body: unknown) {
    const violations: string[] = [];
    const app = Fastify();
    app.setSerializerCompiler(() => (data) => JSON.stringify(data));
    checkResponses(app, [Thing], (v) => violations.push(v));
    app.get(
      '/thing',
      { schema: { response: { 200: Type.Ref('Thing'), 202: { description: 'accepted, no body' } } } },
      // The route's schema types the reply; this test sends what the schema forbids on purpose.
      (_request, reply) => (reply as unknown as FastifyReply).status(status).send(body),
    );
    await app.inject({ method: 'GET', url: '/thing' });
    await app.close();
    return violations;
  }

  it('passes a response that matches its schema, through a $ref', async () => {
    assert.deepEqual(await appReturning(200, { name: 'x' }), []);
  });

  it('reports a response that breaks its schema, with the route and status', async () => {
    const [violation] = await appReturning(200, { name: 7 });
    assert.match(violation ?? '', /^GET \/thing → 200: .*must be string/);
  });

  it('reports a status the route does not document', async () => {
    const [violation] = await appReturning(201, { name: 'x' });
    assert.match(violation ?? '', /201: the status is not documented/);
  });

  it('reports a JSON body where the documentation promises none', async () => {
    const [violation] = await appReturning(202, { name: 'x' });
    assert.match(violation ?? '', /202: a JSON body where the documentation promises none/);
  });
});
