/**
 * @module pool/probes
 * One check of a custom container's health, as Kubernetes defines its probes: `tcpSocket` passes
 * when something listens on the port, `httpGet` when a GET through the port's bridge answers 200–399
 * within the probe's timeout.
 */

import { request } from 'node:http';

import type { SandboxDriver } from '../sandbox/driver.js';
import type { Probe } from './pool-spec.js';

export type ProbeResult = { ok: true } | { ok: false; message: string };

function httpGet(socketPath: string, check: Extract<Probe['check'], { kind: 'httpGet' }>, timeoutMs: number) {
  return new Promise<ProbeResult>((resolve) => {
    const headers: Record<string, string> = {
      host: `localhost:${check.port}`,
      'user-agent': 'sandpool-probe',
    };
    for (const header of check.headers) headers[header.name.toLowerCase()] = header.value;
    const req = request(
      { socketPath, path: check.path, method: 'GET', headers, timeout: timeoutMs },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        resolve(
          status >= 200 && status < 400
            ? { ok: true }
            : { ok: false, message: `GET ${check.path} on port ${check.port} answered ${status}` },
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error) =>
      resolve({ ok: false, message: `GET ${check.path} on port ${check.port} failed: ${error.message}` }),
    );
    req.end();
  });
}

/**
 * Runs one check of `probe` against the sandbox. It never rejects: a sandbox torn down while its
 * probe is in flight (its port bridge closed, its state gone) is a failed check, not an error.
 */
export async function runProbe(driver: SandboxDriver, sandboxId: string, probe: Probe): Promise<ProbeResult> {
  const { check } = probe;
  try {
    if (!(await driver.isListening(sandboxId, check.port))) {
      return { ok: false, message: `nothing listens on port ${check.port}` };
    }
    if (check.kind === 'tcpSocket') return { ok: true };
    const socketPath = await driver.openPort(sandboxId, check.port);
    return await httpGet(socketPath, check, probe.timeoutSeconds * 1000);
  } catch (error) {
    return { ok: false, message: `the check could not run: ${(error as Error).message}` };
  }
}
