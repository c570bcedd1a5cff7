/**
 * Custom container benchmarks (issue: custom containers). Not a test: it measures, prints a Markdown
 * table and writes it to bench/results/. Run as root after scripts/setup.sh:
 *
 *   node --import tsx bench/custom-container.bench.ts [--quick] [--cold 30] [--requests 2000]
 *
 * - cold start: from the cached image to ready (its port listens; with a startup probe, the probe
 *   passed), through the same launcher the server uses, busybox httpd as the app.
 * - proxy overhead: GET of a small page through the server's session proxy (HTTP, API key,
 *   allocation lookup, the bridge) against the same GET straight into the container's bridge, the
 *   only way from the host into a sandbox without a network. Rounds alternate the two paths.
 */

import { Agent, request, type RequestOptions } from 'node:http';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';

import { benchArgs, fmt, machine, summary, writeReport } from './report.js';

import { ConsoleLogArchive } from '../packages/server/src/pool/console-log.js';
import { HostLauncher } from '../packages/server/src/pool/launcher.js';
import {
  pythonPoolSpec,
  type ContainerTemplate,
  type PoolSpec,
} from '../packages/server/src/pool/pool-spec.js';
import { poolId } from '../packages/server/src/arm-id.js';
import { runCommand } from '../packages/server/src/sandbox/command.js';
import { DEFAULT_RESOURCES } from '../packages/server/src/sandbox/driver.js';
import { ImagePuller } from '../packages/server/src/sandbox/image/image-puller.js';
import { OciDriver } from '../packages/server/src/sandbox/oci/oci-driver.js';
import { startServer } from '../packages/server/src/server.js';
import {
  config,
  isolatedDriverOptions,
  removeIsolatedDriver,
} from '../packages/server/test/isolated-driver.js';
import { buildAppImage, startRegistry } from '../packages/server/test/registry.js';
import {
  ADMIN_KEY,
  RESOURCE_GROUP,
  SUBSCRIPTION,
  removeServerState,
  testConfig,
  testServerEnv,
} from '../packages/server/test/server-harness.js';

const args = benchArgs({ cold: { full: 30, quick: 2 }, requests: { full: 2000, quick: 40 } });
const COLD_RUNS = args.cold;
const REQUESTS = args.requests;
const ROUND = Math.min(100, REQUESTS);

const cleanups: (() => void)[] = [];
const cleanup = (undo: () => void) => cleanups.push(undo);

const registry = await startRegistry({ cleanup });
await registry.push(await buildAppImage(cleanup), 'bench/app:1');
const reference = `${registry.host}/bench/app:1`;

/** Cold starts through the launcher, with the image already in the cache. */
async function coldStarts(): Promise<{ pullMs: number; noProbe: number[]; startupProbe: number[] }> {
  const options = isolatedDriverOptions('bench-custom', 8);
  const cacheDir = mkdtempSync('/var/tmp/sandpool-bench-images-');
  const logs = mkdtempSync('/var/tmp/sandpool-bench-logs-');
  const puller = new ImagePuller({
    cacheDir,
    insecureRegistries: [registry.host],
    internalRegistries: [],
    run: runCommand,
  });
  const pullStarted = performance.now();
  const { digest } = await puller.pull(reference);
  const pullMs = performance.now() - pullStarted;
  const launcher = new HostLauncher(new OciDriver(options), {
    interpreter: {
      image: { rootfs: config.paths.pythonRootfs, agentDir: config.paths.pythonAgentDir },
      nodeImage: { rootfs: config.paths.nodeRootfs, agentDir: config.paths.nodeAgentDir, agent: 'node' },
      agent: { connectTimeoutMs: 10_000, interruptGraceMs: 2_000 },
      fork: false,
    },
    containers: { images: puller, logs: new ConsoleLogArchive(logs) },
    limits: {
      pids: DEFAULT_RESOURCES.pids,
      dataBytes: DEFAULT_RESOURCES.dataBytes,
      tmpBytes: DEFAULT_RESOURCES.tmpBytes,
    },
  });
  const container: ContainerTemplate = {
    name: 'app',
    image: reference,
    imageDigest: digest,
    command: [],
    args: [],
    env: [],
    targetPort: 8080,
    probes: [],
    registry: null,
  };
  const spec = (probes: ContainerTemplate['probes']): PoolSpec =>
    pythonPoolSpec({ containerType: 'CustomContainer', container: { ...container, probes } });
  const measure = async (label: string, poolSpec: PoolSpec) => {
    const samples: number[] = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      const began = performance.now();
      const sandbox = await launcher.start(`bench-${label}-${i}`, poolSpec, 'claim');
      samples.push(performance.now() - began);
      await sandbox.destroy();
    }
    return samples;
  };
  try {
    const noProbe = await measure('port', spec([]));
    const startupProbe = await measure(
      'probe',
      spec([
        {
          type: 'Startup',
          check: { kind: 'httpGet', path: '/', port: 8080, headers: [] },
          initialDelaySeconds: 0,
          periodSeconds: 1,
          timeoutSeconds: 1,
          failureThreshold: 3,
        },
      ]),
    );
    return { pullMs, noProbe, startupProbe };
  } finally {
    await removeIsolatedDriver(options);
    rmSync(cacheDir, { recursive: true, force: true });
    rmSync(logs, { recursive: true, force: true });
  }
}

function get(options: RequestOptions): Promise<number> {
  return new Promise((resolve, reject) => {
    const began = performance.now();
    const req = request(options, (res) => {
      res.resume();
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(performance.now() - began)
          : reject(new Error(`status ${String(res.statusCode)}`)),
      );
    });
    req.on('error', reject);
    req.end();
  });
}

/** The same GET through the session proxy and straight into the container's bridge, alternating. */
async function proxyOverhead(): Promise<{ direct: number[]; proxied: number[] }> {
  const home = mkdtempSync('/var/tmp/sandpool-bench-server-');
  // Sandboxes traverse the server's home to reach the image cache, as under /var/lib.
  chmodSync(home, 0o711);
  const env = testServerEnv('bench-proxy', home, {
    SANDPOOL_INSECURE_REGISTRIES: JSON.stringify([registry.host]),
  });
  const server = await startServer(testConfig(env));
  try {
    const created = await fetch(
      `${server.url}/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/providers/Microsoft.App/sessionPools/web?api-version=2025-07-01`,
      {
        method: 'PUT',
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          location: 'local',
          properties: {
            containerType: 'CustomContainer',
            scaleConfiguration: { maxConcurrentSessions: 2, readySessionInstances: 1 },
            customContainerTemplate: {
              containers: [{ image: reference, resources: { cpu: 1, memory: '0.5Gi' } }],
              ingress: { targetPort: 8080 },
            },
          },
        }),
      },
    );
    if (!created.ok) throw new Error(`pool: ${created.status} ${await created.text()}`);
    const id = poolId(SUBSCRIPTION, RESOURCE_GROUP, 'web');
    await server.pools.settled(id);
    const url = new URL(server.url);
    const proxiedOptions: RequestOptions = {
      host: url.hostname,
      port: url.port,
      path: `/subscriptions/${SUBSCRIPTION}/resourceGroups/${RESOURCE_GROUP}/sessionPools/web/index.html?identifier=bench`,
      headers: { authorization: `Bearer ${ADMIN_KEY}` },
      agent: new Agent({ keepAlive: true, maxSockets: 1 }),
    };
    await get(proxiedOptions); // allocates the session
    const session = server.pools.manager(id)!.getSession('bench')!;
    const directOptions: RequestOptions = {
      socketPath: session.instance.upstream!.socketPath,
      path: '/index.html',
      agent: new Agent({ keepAlive: true, maxSockets: 1 }),
    };
    const direct: number[] = [];
    const proxied: number[] = [];
    for (let i = 0; i < ROUND; i++) {
      await get(directOptions);
      await get(proxiedOptions);
    }
    for (let done = 0; done < REQUESTS; done += ROUND) {
      for (let i = 0; i < ROUND; i++) direct.push(await get(directOptions));
      for (let i = 0; i < ROUND; i++) proxied.push(await get(proxiedOptions));
    }
    return { direct, proxied };
  } finally {
    await server.close();
    await removeServerState(testConfig(env));
  }
}

try {
  const cold = await coldStarts();
  const { direct, proxied } = await proxyOverhead();
  const row = (name: string, samples: number[]) => {
    const s = summary(samples);
    return `| ${name} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.min)} | ${s.n} |`;
  };
  const d = summary(direct);
  const p = summary(proxied);
  const table = [
    `Custom container benchmark, ${new Date().toISOString().slice(0, 10)}. Machine: ${machine()}.`,
    `App: busybox httpd (a 1 MB static image); first pull into an empty cache took ${fmt(cold.pullMs)} ms.`,
    '',
    '| Measure | p50 ms | p99 ms | min ms | n |',
    '|---|---|---|---|---|',
    row('cold start, cached image → port listens', cold.noProbe),
    row('cold start, cached image → startup probe (httpGet) passed', cold.startupProbe),
    row('GET straight into the container’s bridge', direct),
    row('GET through the session proxy', proxied),
    '',
    `Proxy overhead: ${fmt(p.p50 - d.p50)} ms added at p50 (${(p.p50 / d.p50).toFixed(2)}×), ${fmt(p.p99 - d.p99)} ms at p99 (${(p.p99 / d.p99).toFixed(2)}×).`,
  ].join('\n');
  writeReport('custom-container', table, args.quick);
} finally {
  for (const undo of cleanups.reverse()) undo();
}
