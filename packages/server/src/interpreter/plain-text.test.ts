/**
 * The Python agent's display of a value against IPython's own, run with the host's python3 (setup
 * installs IPython for the Jupyter baseline): thousands of nested lists, tuples, dicts and sets, and
 * values with multi-line reprs, laid out exactly as IPython's pretty printer lays them out.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const AGENT_DIR = fileURLToPath(new URL('../../../../interpreter/python/', import.meta.url));

const ORACLE = `
import random, sys
sys.path.insert(0, ${JSON.stringify(AGENT_DIR)})
from plain_text import plain_text
from IPython.lib.pretty import pretty

rng = random.Random(7)

def value(depth=0):
    if depth > 3 or rng.random() < 0.35:
        return rng.choice([rng.randint(-10**6, 10**6), rng.random(), "x" * rng.randint(0, 30), None, True])
    n = rng.choice([0, 1, 2, 3, 5, 8, 20, 60])
    kind = rng.choice(["list", "tuple", "dict", "set", "frozenset"])
    if kind == "list":
        return [value(depth + 1) for _ in range(n)]
    if kind == "tuple":
        return tuple(value(depth + 1) for _ in range(n))
    if kind == "dict":
        return {rng.choice(["k", "key", "a_long_key_name"]) + str(i): value(depth + 1) for i in range(n)}
    members = {rng.randint(0, 10 ** rng.randint(1, 8)) for _ in range(n)}
    return set(members) if kind == "set" else frozenset(members)

class Lines:
    def __repr__(self):
        return "line one\\nline two is longer\\nthree"

looped = [1, 2]
looped.append(looped)
values = [value() for _ in range(3000)] + [
    looped, list(range(1500)), (1,), [(1,)] * 30, {"m": Lines(), "n": [Lines()] * 3},
    frozenset({(1, 2), "a"}), {"s": "a" * 100}, [{"a": 1}] * 20,
]
wrong = [v for v in values if plain_text(v) != pretty(v, max_width=79)]
print(len(values), len(wrong), repr(wrong[:1])[:300])
`;

describe('plain_text', () => {
  it('lays values out exactly as IPython’s text/plain display does', () => {
    const run = spawnSync('python3', ['-B', '-c', ORACLE], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    const [checked, wrong, example] = run.stdout.trim().split(' ');
    assert.equal(Number(checked), 3008);
    assert.equal(Number(wrong), 0, `first mismatch: ${String(example)}`);
  });
});
