/**
 * @module api/node-routes
 * `GET /sandpool/nodes` and `POST /sandpool/nodes/{name}/drain` (a role on every pool, as their routes
 * declare, since a node serves them all): parse, hand to the node registry, render.
 */

import type { FastifyInstance } from 'fastify';

import type { NodeRegistry } from '../pool/node-registry.js';
import { nodeRoutes } from './schemas/nodes.js';

export function registerNodeRoutes(app: FastifyInstance, deps: { nodes: NodeRegistry }): void {
  app.get('/sandpool/nodes', nodeRoutes.list, async () => {
    return { value: await deps.nodes.list() };
  });

  app.post('/sandpool/nodes/:name/drain', nodeRoutes.drain, async (request) => {
    const { name } = request.params as { name: string };
    return deps.nodes.drain(name);
  });
}
