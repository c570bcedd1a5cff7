/**
 * @module pool/private-identifier
 * Sessions that belong to one connection rather than to a name callers share: an MCP session's own
 * sandbox. Their identifiers hold a space, which no wire identifier may (api/data/pool-endpoint
 * refuses it), so no request through any API can name one, and no listing shows them.
 */

const PREFIX = 'private ';

/** The identifier of a connection's own session; `owner` names the connection (e.g. `mcp <id>`). */
export const privateIdentifier = (owner: string): string => `${PREFIX}${owner}`;

/** Whether the identifier is a connection's own, reached by that connection alone. */
export const isPrivateIdentifier = (identifier: string): boolean => identifier.startsWith(PREFIX);
