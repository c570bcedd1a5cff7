/**
 * @module interpreter/line-reader
 * The framing both agents speak over their sockets: one JSON message per line. Chunks come as the
 * socket gives them; each whole line goes to `onLine`, and a line that grows past `maxBytes` without
 * its newline (an agent gone wrong, or code in the sandbox writing to the socket) goes to `onOverflow`.
 */

export class LineReader {
  private buffer: Buffer[] = [];
  private buffered = 0;

  constructor(
    private readonly maxBytes: number,
    private readonly onLine: (line: string) => void,
    private readonly onOverflow: () => void,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    for (let newline = chunk.indexOf(10); newline >= 0; newline = chunk.indexOf(10, start)) {
      this.buffer.push(chunk.subarray(start, newline));
      const line = Buffer.concat(this.buffer).toString('utf8');
      this.buffer = [];
      this.buffered = 0;
      start = newline + 1;
      this.onLine(line);
    }
    if (start < chunk.length) {
      this.buffer.push(chunk.subarray(start));
      this.buffered += chunk.length - start;
      if (this.buffered > this.maxBytes) this.onOverflow();
    }
  }
}
