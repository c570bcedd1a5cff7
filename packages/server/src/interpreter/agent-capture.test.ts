/**
 * The Python agent's output capture, run with the host's python3: what the code printed is all in
 * the reply even when the thread reading the pipe is scheduled late (a sandbox at its CPU quota), and
 * a child process the code left holding the pipe does not hold the reply back.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const AGENT_DIR = fileURLToPath(new URL('../../../../interpreter/python/', import.meta.url));

/** Runs `body` with the agent imported as `agent`; returns what it printed to the real stderr. */
function python(body: string): string {
  const script = `import os, sys, time, threading\nsys.path.insert(0, ${JSON.stringify(AGENT_DIR)})\nimport agent\n${body}`;
  const result = spawnSync('python3', ['-B', '-c', script], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(result.status, 0, result.stderr);
  return result.stderr.trim();
}

describe('agent output capture', () => {
  it('keeps output the reader had not read yet when the code ended', () => {
    const out = python(`
real_read = os.read
def late_read(fd, size):
    # The reader gets the CPU only well after the drain allowance, as under a CPU quota.
    if threading.current_thread() is not threading.main_thread():
        time.sleep(agent.DRAIN_SECONDS * 4)
    return real_read(fd, size)
agent.os.read = late_read
capture = agent.StreamCapture(1, 100)
os.write(1, b"1\\n")
text, truncated = capture.finish()
print(repr(text), truncated, file=sys.stderr)
`);
    assert.equal(out, "'1\\n' False");
  });

  it('does not wait for a child process that still holds the pipe', () => {
    const out = python(`
import subprocess
capture = agent.StreamCapture(1, 100)
os.write(1, b"spawned\\n")
child = subprocess.Popen(["sleep", "10"])
began = time.monotonic()
text, truncated = capture.finish()
waited = time.monotonic() - began
child.kill()
print(repr(text), waited < 2, file=sys.stderr)
`);
    assert.equal(out, "'spawned\\n' True");
  });
});
