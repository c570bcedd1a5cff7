/**
 * What the server benchmarks ask of a Sandpool endpoint, over node:http (or node:https) with
 * keep-alive as a service calling Sandpool would (fetch adds about a millisecond a call): create a
 * pool, run `print(1)` for an identifier and time it, time a streamed run's first output, end a
 * session. Over HTTPS it trusts the server's self-signed certificate: the benchmarks reach their
 * own servers on loopback only.
 */

import { Agent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export const BENCH_SUBSCRIPTION = '00000000-0000-0000-0000-0000000be4c4';

export class PoolClient {
  private readonly agent: Agent;
  private readonly request: typeof httpRequest;
  private readonly headers: Record<string, string>;

  constructor(
    /** The node's base URL. */
    readonly url: string,
    key: string,
  ) {
    this.headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const https = url.startsWith('https:');
    this.agent = https
      ? new HttpsAgent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: false })
      : new Agent({ keepAlive: true, maxSockets: 64 });
    this.request = https ? httpsRequest : httpRequest;
  }

  call(
    method: string,
    url: string,
    body?: string,
  ): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
    return new Promise((resolve, reject) => {
      const req = this.request(url, { method, agent: this.agent, headers: this.headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            text: Buffer.concat(chunks).toString(),
            headers: res.headers,
          }),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  armUrl(pool: string, resourceGroup = 'bench'): string {
    return `${this.url}/subscriptions/${BENCH_SUBSCRIPTION}/resourceGroups/${resourceGroup}/providers/Microsoft.App/sessionPools/${pool}?api-version=2025-07-01`;
  }

  /** Waits until the pool at `armUrl` holds `ready` ready sandboxes and starts no more. */
  async waitForReady(armUrl: string, ready: number): Promise<void> {
    for (;;) {
      const pool = JSON.parse((await this.call('GET', armUrl)).text) as {
        properties?: { sessionStatus?: { readySessionCount?: number; startingSessionCount?: number } };
      };
      const status = pool.properties?.sessionStatus;
      if ((status?.readySessionCount ?? 0) >= ready && status?.startingSessionCount === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  dataUrl(pool: string, path: string, identifier: string): string {
    return `${this.url}/subscriptions/${BENCH_SUBSCRIPTION}/resourceGroups/bench/sessionPools/${pool}/${path}?api-version=2025-02-02-preview&identifier=${identifier}`;
  }

  /**
   * Creates a code-interpreter pool (PythonLTS unless named), with its preload list and an idle
   * session's cooldown where given; its warm set fills in the background.
   */
  async createPool(
    name: string,
    max: number,
    ready: number,
    options: {
      containerType?: 'PythonLTS' | 'NodeLTS';
      preloadModules?: string[];
      cooldownSeconds?: number;
    } = {},
  ): Promise<void> {
    const body = {
      location: 'local',
      properties: {
        containerType: options.containerType ?? 'PythonLTS',
        scaleConfiguration: { maxConcurrentSessions: max, readySessionInstances: ready },
        ...(options.cooldownSeconds !== undefined && {
          dynamicPoolConfiguration: {
            lifecycleConfiguration: {
              lifecycleType: 'Timed',
              cooldownPeriodInSeconds: options.cooldownSeconds,
            },
          },
        }),
        ...(options.preloadModules && { preloadModules: options.preloadModules }),
      },
    };
    const response = await this.call('PUT', this.armUrl(name), JSON.stringify(body));
    if (response.status !== 201) throw new Error(`create ${name}: ${response.status} ${response.text}`);
  }

  /**
   * `print(1)` for an identifier (or another `code` that prints 1, such as a NodeLTS pool's
   * `console.log(1)`): the round trip in milliseconds, and the node that served it.
   */
  async printOne(pool: string, identifier: string, code = 'print(1)'): Promise<{ ms: number; node: string }> {
    const { ms, node, stdout } = await this.run(pool, identifier, code);
    if (stdout !== '1\n') throw new Error(`${code} printed ${JSON.stringify(stdout)}`);
    return { ms, node };
  }

  /** Runs `code` for an identifier, which must succeed: the round trip in milliseconds, the node that served it, its stdout. */
  async run(
    pool: string,
    identifier: string,
    code: string,
  ): Promise<{ ms: number; node: string; stdout: string | undefined }> {
    const began = performance.now();
    const response = await this.call(
      'POST',
      this.dataUrl(pool, 'executions', identifier),
      JSON.stringify({ code }),
    );
    const ms = performance.now() - began;
    const result = JSON.parse(response.text) as { status?: string; result?: { stdout?: string } };
    if (result.status !== 'Succeeded') {
      throw new Error(`${code} answered ${response.status} ${JSON.stringify(result)}`);
    }
    return { ms, node: String(response.headers['x-sandpool-node'] ?? ''), stdout: result.result?.stdout };
  }

  /**
   * Runs `code` as a streamed execution (`Accept: text/event-stream`): milliseconds until the first
   * `stdout` event, and until the stream ends with its result.
   */
  streamed(pool: string, identifier: string, code: string): Promise<{ firstOutput: number; end: number }> {
    return new Promise((resolve, reject) => {
      const began = performance.now();
      let firstOutput: number | undefined;
      let text = '';
      const req = this.request(
        this.dataUrl(pool, 'executions', identifier),
        { method: 'POST', agent: this.agent, headers: { ...this.headers, accept: 'text/event-stream' } },
        (res) => {
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            text += chunk;
            if (firstOutput === undefined && text.includes('event: stdout'))
              firstOutput = performance.now() - began;
          });
          res.on('end', () => {
            const end = performance.now() - began;
            if (firstOutput === undefined || !text.includes('event: result')) {
              reject(new Error(`the stream answered ${String(res.statusCode)} ${text.slice(0, 300)}`));
              return;
            }
            resolve({ firstOutput, end });
          });
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify({ code }));
    });
  }

  async endSession(pool: string, identifier: string): Promise<void> {
    const response = await this.call('DELETE', this.dataUrl(pool, 'session', identifier));
    if (response.status !== 204)
      throw new Error(`DELETE session answered ${response.status} ${response.text}`);
  }

  close(): void {
    this.agent.destroy();
  }
}
