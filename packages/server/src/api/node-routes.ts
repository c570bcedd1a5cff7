/**
 * @module api/node-routes
 * `GET /sandpool/nodes` and `POST /sandpool/nodes/{name}/drain`: parse, authorize (a role on every
 * pool, since a node serves them all), hand to the node registry, render.
 */

import type { FastifyInstance } from 'fastify';

import { authorize } from '../auth/roles.js';
import type { NodeRegistry } from '../pool/node-registry.js';
import { nodeRoutes } from './schemas/nodes.js';

export function registerNodeRoutes(app: FastifyInstance, deps: { nodes: NodeRegistry }): void {
  app.get('/sandpool/nodes', nodeRoutes.list, async (request) => {
    authorize(request.principal, 'pools/read');
    return { value: await deps.nodes.list() };
  });

  app.post('/sandpool/nodes/:name/drain', nodeRoutes.drain, async (request) => {
    authorize(request.principal, 'pools/write');
    const { name } = request.params as { name: string };
    return deps.nodes.drain(name);
  });
}
