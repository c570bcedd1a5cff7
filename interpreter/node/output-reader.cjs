/**
 * Sandpool's Node agent: the output reader, a worker thread. It drains the agent's stdout and stderr
 * pipes (descriptors 3 and 4, see launch.sh) on its own event loop, so user code that prints a lot
 * while the main thread is busy never blocks on a full pipe. During an execution it keeps a bounded
 * prefix of each stream (and streams it to the main thread when asked); between executions it passes
 * the output on to the sandbox's console (descriptors 5 and 6).
 *
 * An execution's output ends at a marker the main thread writes to both pipes once the code is done:
 * a pipe keeps order, so everything written before the marker has been read when the marker is seen.
 */
'use strict';

const fs = require('node:fs');
const net = require('node:net');
const { parentPort } = require('node:worker_threads');

// Bytes kept per character of the cap (UTF-8 needs up to 4).
const BYTES_PER_CHAR = 4;

const streams = [
  { name: 'stdout', fd: 3, console: 5 },
  { name: 'stderr', fd: 4, console: 6 },
];

/** The execution being captured, if one is. */
let capture;

function toConsole(stream, bytes) {
  try {
    fs.writeSync(stream.console, bytes);
  } catch {
    // The console is gone (a sandbox being torn down): nothing to tell.
  }
}

function onData(stream, chunk) {
  const state = capture?.streams[stream.name];
  if (!state || state.done) {
    toConsole(stream, chunk);
    return;
  }
  // The marker may straddle chunks: search the tail of what came before as well.
  const joined = Buffer.concat([state.carry, chunk]);
  const at = joined.indexOf(capture.marker);
  const mine = at < 0 ? joined : joined.subarray(0, at);
  const keepTail = at < 0 ? markerStartAtEnd(mine, capture.marker) : 0;
  keep(state, mine.subarray(0, mine.length - keepTail));
  state.carry = Buffer.from(mine.subarray(mine.length - keepTail));
  if (at >= 0) {
    state.done = true;
    const after = joined.subarray(at + capture.marker.length);
    if (after.length > 0) toConsole(stream, after);
    finishIfDone();
  }
}

/** How many bytes at the end of `bytes` could begin the marker (held back until the next chunk). */
function markerStartAtEnd(bytes, marker) {
  const from = bytes.lastIndexOf(marker[0], bytes.length - 1);
  if (from < 0 || bytes.length - from >= marker.length) return 0;
  return marker.subarray(0, bytes.length - from).equals(bytes.subarray(from)) ? bytes.length - from : 0;
}

function keep(state, bytes) {
  if (bytes.length === 0) return;
  state.total += bytes.length;
  const room = capture.maxBytes - state.kept;
  if (room <= 0) return;
  const kept = bytes.subarray(0, room);
  state.chunks.push(Buffer.from(kept));
  state.kept += kept.length;
  if (capture.stream) {
    const text = state.decoder.decode(kept, { stream: true }).slice(0, capture.maxChars - state.streamed);
    state.streamed += text.length;
    if (text) parentPort.postMessage({ op: 'output', stream: state.name, text });
  }
}

function finishIfDone() {
  if (!capture?.finishing || !Object.values(capture.streams).every((state) => state.done)) return;
  const result = {};
  for (const state of Object.values(capture.streams)) {
    const text = new TextDecoder('utf-8').decode(Buffer.concat(state.chunks));
    result[state.name] = text.slice(0, capture.maxChars);
    result[`${state.name}Truncated`] = state.total > state.kept || text.length > capture.maxChars;
  }
  capture = undefined;
  parentPort.postMessage({ op: 'finished', ...result });
}

parentPort.on('message', (message) => {
  if (message.op === 'start') {
    const fresh = (name) => ({
      name,
      chunks: [],
      kept: 0,
      total: 0,
      streamed: 0,
      done: false,
      carry: Buffer.alloc(0),
      decoder: new TextDecoder('utf-8'),
    });
    capture = {
      marker: Buffer.from(message.marker),
      maxChars: message.maxChars,
      maxBytes: message.maxChars * BYTES_PER_CHAR,
      stream: message.stream,
      finishing: false,
      streams: { stdout: fresh('stdout'), stderr: fresh('stderr') },
    };
    parentPort.postMessage({ op: 'started' });
  } else if (message.op === 'finish') {
    capture.finishing = true;
    finishIfDone();
  }
});

for (const stream of streams) {
  const pipe = new net.Socket({ fd: stream.fd, readable: true, writable: false });
  pipe.on('data', (chunk) => onData(stream, chunk));
}
