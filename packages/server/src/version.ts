/**
 * @module version
 * The server's version, as its package.json states it (a test keeps the two equal); it names the
 * OpenAPI document's version and the SDK's compatibility.
 */
export const SANDPOOL_VERSION = '0.1.0';
