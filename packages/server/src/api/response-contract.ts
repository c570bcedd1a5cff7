/**
 * @module api/response-contract
 * Checks every JSON response against its route's documented schema and reports each mismatch, so the
 * OpenAPI document (and the SDK typed from it) cannot drift from what the server sends. Test servers
 * turn it on; production does not pay for it.
 */

import { Ajv, type ValidateFunction } from 'ajv';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { TSchema } from 'typebox';

type ResponseSchemas = Record<string, TSchema & { content?: unknown }>;

function schemaFor(responses: ResponseSchemas, status: number): TSchema | undefined {
  const documented =
    responses[String(status)] ?? responses[`${Math.floor(status / 100)}xx`] ?? responses.default;
  // A response documented per media type: its JSON body is what is checked here.
  const json = (documented?.content as Record<string, { schema?: TSchema }> | undefined)?.[
    'application/json'
  ];
  return json?.schema ?? documented;
}

export function checkResponses(
  app: FastifyInstance,
  sharedSchemas: TSchema[],
  report: (violation: string) => void,
): void {
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  for (const schema of sharedSchemas) ajv.addSchema(schema);
  const compiled = new WeakMap<object, ValidateFunction>();

  app.addHook('onSend', async (request: FastifyRequest, reply: FastifyReply, payload: unknown) => {
    const responses = request.routeOptions.schema?.response as ResponseSchemas | undefined;
    if (!responses) return payload;
    const where = `${request.method} ${request.routeOptions.url ?? request.url} → ${reply.statusCode}`;
    const schema = schemaFor(responses, reply.statusCode);
    if (!schema) {
      report(`${where}: the status is not documented`);
      return payload;
    }
    const type = String(reply.getHeader('content-type') ?? '');
    if (typeof payload !== 'string' || !type.startsWith('application/json')) return payload;
    if (!('type' in schema || 'anyOf' in schema || '$ref' in schema)) {
      report(`${where}: a JSON body where the documentation promises none`);
      return payload;
    }
    let validate = compiled.get(schema);
    if (!validate) {
      validate = ajv.compile(schema);
      compiled.set(schema, validate);
    }
    if (!validate(JSON.parse(payload))) {
      report(`${where}: ${ajv.errorsText(validate.errors)} in ${payload.slice(0, 500)}`);
    }
    return payload;
  });
}
