/**
 * The dashboard in a real browser (Debian's Chromium driven by playwright-core) against a real
 * server with real sandboxes: sign-in, pools with live counts, the pool page's charts, sessions,
 * events and idle-time distribution, live updates without a reload, stopping a session as an
 * operator and not as a Reader, audit entries waiting for a locked store, and a phone-sized layout. Screenshots are kept under
 * test-artifacts/ for a human to look at.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

import { SandpoolClient } from '@sandpool/sdk';
import { chromium, type Browser, type Page } from 'playwright-core';

import { skipReason } from '../../server/test/integration/harness.js';
import {
  ADMIN_KEY,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  startTestServer,
  type TestServer,
} from '../../server/test/server-harness.js';
import { identifierHash } from '../src/format.js';

const CHROMIUM = '/usr/bin/chromium';
const DIST = fileURLToPath(new URL('../dist/index.html', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../../../test-artifacts/', import.meta.url));

const why =
  skipReason ??
  (existsSync(CHROMIUM)
    ? undefined
    : `no browser at ${CHROMIUM}: scripts/setup.sh installs Debian's chromium`);

if (!why && !existsSync(DIST)) {
  throw new Error(
    `the dashboard is not built (${DIST}): run scripts/setup.sh or npm run build -w packages/web`,
  );
}

describe('web dashboard in Chromium', { skip: why }, async () => {
  const server: TestServer = await startTestServer('web', {
    env: {
      SANDPOOL_DEFAULT_SUBSCRIPTION: SUBSCRIPTION,
      SANDPOOL_NODE_CPU: '8',
      SANDPOOL_NODE_MEMORY_GIB: '16',
    },
  });
  const client = new SandpoolClient({
    endpoint: server.url,
    credential: ADMIN_KEY,
    subscription: SUBSCRIPTION,
    resourceGroup: RESOURCE_GROUP,
    pollIntervalMs: 50,
  });
  await client.pools.createOrUpdate('webpython', { maxSessions: 5, readySessions: 1, cooldownSeconds: 600 });
  const readerKey = (await client.keys.create({ name: 'dashboard reader', roles: ['Reader'] })).key;
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Playwright gives each launch a fresh, empty profile; these keep Chromium off the network.
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  mkdirSync(ARTIFACTS, { recursive: true });
  const pageErrors: string[] = [];

  after(async () => {
    await browser.close();
    assert.deepEqual(pageErrors, [], 'errors in the page');
  });

  async function openPage(viewport = { width: 1280, height: 900 }): Promise<Page> {
    const page = await browser.newPage({ viewport });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    // A refused request is logged by Chromium itself (the bad-token test makes one on purpose).
    page.on('console', (message) => {
      if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
        pageErrors.push(message.text());
      }
    });
    return page;
  }

  async function signIn(page: Page, token: string): Promise<void> {
    await page.goto(`${server.url}/`);
    await page.getByLabel('Token').fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
  }

  it('serves the page without a credential, with a strict CSP, and refuses a bad token', async () => {
    const response = await fetch(`${server.url}/dashboard/`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-security-policy') ?? '', /script-src 'self'/);
    assert.equal(response.headers.get('cache-control'), 'no-cache');

    const page = await openPage();
    // Not signed in, API calls from the page carry nothing and get nothing.
    await page.goto(`${server.url}/`);
    assert.match(page.url(), /\/dashboard\/$/);
    await page.getByLabel('Token').fill('sp_000000000000_not-a-key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').filter({ hasText: 'does not accept this token' }).waitFor();
    await page.close();
  });

  it('shows pools with live counts and the last hour, then a pool page that follows sessions live', async () => {
    const pool = client.pool('webpython');
    await pool.session('alice').execute('sum(range(10))');
    const failed = await pool.session('bob').execute('1 / 0');
    assert.equal(failed.status, 'Failed');

    const page = await openPage();
    await signIn(page, ADMIN_KEY);
    const card = page.getByTestId('pool-webpython');
    await card.getByTestId('allocated').filter({ hasText: /^2$/ }).waitFor();
    await card.getByTestId('hour').filter({ hasText: '2 allocations' }).waitFor();
    assert.match(await card.getByTestId('hour').innerText(), /2 executions, 1 error$/);
    await page.getByTestId('usage').or(page.getByText('No session has ended')).first().waitFor();

    await card.getByRole('link', { name: 'webpython' }).click();
    await page.getByTestId('live').filter({ hasText: 'live' }).waitFor();
    const rows = page.getByTestId('session-row');
    await rows.nth(1).waitFor();
    assert.equal(await rows.count(), 2);
    const table = await page.getByTestId('sessions').innerText();
    // Identifiers appear only as their hash.
    assert.ok(table.includes(`#${identifierHash('alice')}`), table);
    assert.ok(!table.includes('alice'), 'the raw identifier is shown');
    await page.getByTestId('latency-chart').locator('canvas').waitFor();
    await page.getByTestId('executions-chart').locator('canvas').waitFor();

    // A new session appears without a reload, from the live event stream.
    await pool.session('carol').execute('print("hi")');
    await rows.nth(2).waitFor();
    await page
      .getByTestId('events')
      .locator('li[data-type="allocated"]')
      .filter({ hasText: `#${identifierHash('carol')}` })
      .waitFor();
    await page.screenshot({ path: `${ARTIFACTS}dashboard-pool.png`, fullPage: true });

    // An operator stops alice's session from the table.
    const aliceRow = rows.filter({ hasText: `#${identifierHash('alice')}` });
    await aliceRow.getByRole('button', { name: 'Stop' }).click();
    await aliceRow.getByRole('button', { name: 'Confirm stop' }).click();
    await aliceRow.waitFor({ state: 'detached' });
    const sessions = (await pool.sessions()).map((s) => s.identifier).sort();
    assert.deepEqual(sessions, ['bob', 'carol']);
    await page
      .getByTestId('events')
      .locator('li[data-type="ended"]')
      .filter({ hasText: 'stopped' })
      .waitFor();
    await page.getByTestId('idle-distribution').waitFor();
    assert.match(await page.getByText(/ended;/).innerText(), /^1 session ended; 0% by the cooldown/);

    await page.goto(`${server.url}/dashboard/#/`);
    await page.getByTestId('hour').filter({ hasText: '3 allocations' }).waitFor();
    const node = page.getByTestId('node-row').first();
    await node.filter({ hasText: 'serving' }).waitFor();
    assert.match(await node.innerText(), /serving/);
    assert.match(await node.getByTestId('node-cpu').innerText(), /^[\d.]+ \/ 8$/);
    assert.match(await node.getByTestId('node-memory').innerText(), /^[\d.]+ [KMG]?i?B \/ 16\.0 GiB$/);
    // What the sandboxes hold, of their parent cgroup's hard limit (the host's memory less the reserve).
    assert.match(await node.getByTestId('node-memory-used').innerText(), /^[\d.]+ [KMG]?i?B \/ [\d.]+ GiB$/);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-overview.png`, fullPage: true });
    await page.close();
  });

  it('shows the audit entries a locked store keeps waiting, until it takes them', async () => {
    const page = await openPage();
    await signIn(page, ADMIN_KEY);
    await page.getByTestId('node-row').first().waitFor();
    // Another process holds the write lock: reads go on (WAL), writes wait and then fail. The store's
    // busy wait holds this process (the test's and the server's) for its timeout at each try.
    const lock = new DatabaseSync(server.config.paths.database);
    lock.exec('BEGIN IMMEDIATE');
    try {
      // Made without the store: answered at once, its audit entry waits for the lock.
      await client.tokens.create({ expiresInSeconds: 60 });
      // The page polls every 5 s and is answered in the pauses between the journal's tries.
      await page
        .getByTestId('audit-backlog')
        .filter({ hasText: /^1 audit entry waits on this node/ })
        .waitFor({ timeout: 90_000 });
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    await page.getByTestId('audit-backlog').waitFor({ state: 'detached', timeout: 60_000 });
    const audit = await fetch(`${server.url}/sandpool/audit?action=token.create`, {
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
    });
    assert.equal(((await audit.json()) as { value: unknown[] }).value.length, 1, 'stored once the lock went');
    await page.close();
  });

  it('ranks the day’s usage by cost and marks a deleted pool’s row', async () => {
    await client.pools.createOrUpdate('webgone', { maxSessions: 1, readySessions: 1 });
    const gone = client.pool('webgone').session('once');
    await gone.execute('1');
    await gone.stop();
    await client.pools.delete('webgone');
    const page = await openPage();
    await signIn(page, ADMIN_KEY);
    const rows = page.getByTestId('usage-row');
    await rows
      .filter({ hasText: `${RESOURCE_GROUP}/webgone` })
      .filter({ hasText: 'deleted' })
      .waitFor();
    await rows.filter({ hasText: `${RESOURCE_GROUP}/webpython` }).waitFor();
    assert.equal(
      await rows
        .filter({ hasText: `${RESOURCE_GROUP}/webpython` })
        .getByText('deleted')
        .count(),
      0,
      'a live pool is not marked deleted',
    );
    const costs = await rows.evaluateAll((cells) =>
      cells.map((row) => Number(row.getAttribute('data-cost'))),
    );
    assert.deepEqual(
      costs,
      [...costs].sort((a, b) => b - a),
      'costliest first',
    );
    await page.close();
  });

  it('offers no stop action to a Reader', async () => {
    const page = await openPage();
    await signIn(page, readerKey);
    await page.goto(`${server.url}/dashboard/#/pools/${RESOURCE_GROUP}/webpython`);
    await page.getByTestId('session-row').first().waitFor();
    assert.equal(await page.getByRole('button', { name: 'Stop' }).count(), 0);
    await page.close();
  });

  it('fits a phone screen', async () => {
    const page = await openPage({ width: 390, height: 844 });
    await signIn(page, ADMIN_KEY);
    await page.goto(`${server.url}/dashboard/#/pools/${RESOURCE_GROUP}/webpython`);
    await page.getByTestId('session-row').first().waitFor();
    const overflow = await page.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    await page.screenshot({ path: `${ARTIFACTS}dashboard-phone.png`, fullPage: true });
    await page.close();
  });
});
