/**
 * @module api/data/execution-stream
 * A synchronous execution answered as Server-Sent Events (a Sandpool extension, asked for with
 * `Accept: text/event-stream`): the stream opens once the session is reached, with the headers the
 * JSON answer has; then `stdout` and `stderr` events (`{"text": …}`) as the code writes, within
 * outputStreamsMaxLength; an `image` event per image (as the code shows it with `plt.show()`, else at
 * the end); and one `result` event holding exactly the body the JSON answer would have. A failure after the stream opened is an `error` event with Azure's
 * error body. A client that leaves does not stop the run: its record is kept as for any run.
 */

import type { FastifyReply } from 'fastify';

import { AppError } from '../../errors.js';
import type { ExecutionResult } from '../../pool/executions.js';

export class ExecutionEventStream {
  private opened = false;
  /** Images sent while the run went on: the first of the record's images. */
  private imagesSent = 0;

  constructor(private readonly reply: FastifyReply) {}

  /** Whether a client asked for the run as events. */
  static wanted(accept: string | undefined): boolean {
    return accept?.includes('text/event-stream') ?? false;
  }

  /** Opens the stream with the headers set on the reply so far (the session's). */
  open(): void {
    if (this.opened) return;
    this.opened = true;
    const { reply } = this;
    reply.hijack();
    const headers = Object.fromEntries(
      Object.entries(reply.getHeaders()).filter(([, value]) => value !== undefined),
    ) as Record<string, string | number | string[]>;
    reply.raw.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    });
  }

  output(stream: 'stdout' | 'stderr', text: string): void {
    this.open();
    this.send(stream, { text });
  }

  image(image: ExecutionResult['images'][number]): void {
    this.open();
    this.imagesSent++;
    this.send('image', image);
  }

  /** The images not sent yet, then the result, then the end. */
  finish(images: ExecutionResult['images'], result: unknown): void {
    this.open();
    for (const image of images.slice(this.imagesSent)) this.send('image', image);
    this.send('result', result);
    this.reply.raw.end();
  }

  /** Ends an open stream with an `error` event; before it opened, the error is the request's. */
  fail(error: unknown): void {
    if (!this.opened) throw error;
    const body =
      error instanceof AppError
        ? { error: { code: error.code, message: error.message } }
        : { error: { code: 'InternalServerError', message: 'the execution failed on the server' } };
    this.send('error', body);
    this.reply.raw.end();
  }

  private send(event: string, data: unknown): void {
    const raw = this.reply.raw;
    // A client that left gets nothing more; the run goes on.
    if (raw.destroyed || raw.writableEnded) return;
    raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }
}
