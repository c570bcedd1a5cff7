import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';

import { routedUrl, sandboxIdOf } from './sandbox-routing.js';

const requestOf = (url: string, headers: Record<string, string>) =>
  ({ url, headers }) as unknown as IncomingMessage;
const ID = 'abcdefghij0123456789';

describe('routedUrl', () => {
  it('takes a sandbox request named by headers below the sandbox prefix, at its port', () => {
    const request = requestOf('/files?path=a', { 'e2b-sandbox-id': ID, 'e2b-sandbox-port': '49999' });
    assert.equal(routedUrl(request), '/e2b/sandbox/49999/files?path=a');
    assert.equal(sandboxIdOf(request.headers), ID);
  });

  it('takes the port and id from a host name {port}-{id}.{domain}, and envd’s port when no port is said', () => {
    const request = requestOf('/health', { host: `49983-${ID}.sandbox.example.com:8443` });
    assert.equal(routedUrl(request), '/e2b/sandbox/49983/health');
    assert.equal(sandboxIdOf(request.headers), ID);
    assert.equal(routedUrl(requestOf('/health', { 'e2b-sandbox-id': ID })), '/e2b/sandbox/49983/health');
    assert.equal(
      routedUrl(requestOf('/health', { 'e2b-sandbox-id': ID, 'e2b-sandbox-port': '../x' })),
      '/e2b/sandbox/49983/health',
    );
  });

  it('leaves every other request as it came, and one another node already routed', () => {
    assert.equal(routedUrl(requestOf('/v2/sandboxes', { host: '127.0.0.1:8443' })), '/v2/sandboxes');
    assert.equal(routedUrl(requestOf('/health', { host: `49983-short.example.com` })), '/health');
    assert.equal(
      routedUrl(requestOf('/e2b/sandbox/49983/health', { 'e2b-sandbox-id': ID })),
      '/e2b/sandbox/49983/health',
    );
  });
});
