/**
 * @module retry
 * A `fetch` that retries what is safe to retry: 429 (pool full, rate limited) and 503 (shutting
 * down) for every method, since the server did not act on the request, and connection failures for
 * methods that do not change anything. Waits grow exponentially with full jitter, never less than
 * the server's `Retry-After`.
 */

import { ConnectionError } from './errors.js';

export interface RetryOptions {
  /** Attempts after the first; default 4. */
  retries?: number;
  /** Upper bound of the first wait, ms; doubles each attempt. Default 250. */
  baseDelayMs?: number;
  /** No wait is longer; default 8000. */
  maxDelayMs?: number;
}

const RETRIED_STATUSES = new Set([429, 503]);
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'DELETE', 'PUT']);

export interface RetryDeps {
  fetch: typeof fetch;
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });

/** The innermost reason a fetch failed (fetch itself says only "fetch failed"). */
function reason(error: unknown): string {
  let cause = error;
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  return cause instanceof Error ? cause.message : String(cause);
}

function retryAfterMs(response: Response): number {
  const header = response.headers.get('retry-after');
  const seconds = header === null ? NaN : Number(header);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds * 1000 : 0;
}

export function retryingFetch(options: RetryOptions, deps: RetryDeps): typeof fetch {
  const retries = options.retries ?? 4;
  const base = options.baseDelayMs ?? 250;
  const cap = options.maxDelayMs ?? 8000;
  const backoff = (attempt: number) => deps.random() * Math.min(cap, base * 2 ** attempt);

  return async (input, init) => {
    const request = new Request(input, init);
    for (let attempt = 0; ; attempt++) {
      // Each attempt sends its own copy: a body can be read once.
      const copy = attempt < retries ? request.clone() : request;
      let response: Response;
      try {
        response = await deps.fetch(copy);
      } catch (cause) {
        if (request.signal.aborted) throw cause;
        if (attempt >= retries || !SAFE_METHODS.has(request.method)) {
          throw new ConnectionError(`cannot reach ${new URL(request.url).origin}: ${reason(cause)}`, {
            cause,
          });
        }
        await deps.sleep(backoff(attempt), request.signal);
        continue;
      }
      if (!RETRIED_STATUSES.has(response.status) || attempt >= retries) return response;
      await response.body?.cancel();
      await deps.sleep(Math.min(cap, Math.max(retryAfterMs(response), backoff(attempt))), request.signal);
    }
  };
}
