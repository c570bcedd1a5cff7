/**
 * @module nodes-table
 * The nodes sharing the store: each one's lease and whether it is live, whether it drains, and what
 * it holds (exact for the node answering, as of its last look for the others) against its capacity:
 * sandbox slots, and the cores and memory its sandboxes may reserve. For the node answering it also
 * shows what its sandboxes hold against their hard limit, and whether it is short of memory.
 */

import type { NodeInfo } from '@sandpool/sdk';

import { bytes, cores, duration } from './format.js';

/** "1.5 / 32": reserved of the limit; a node from before the limit was counted has none. */
const ofLimit = (reserved: string, limit: string | null) =>
  limit === null ? reserved : `${reserved} / ${limit}`;

export function NodesTable({ nodes, now }: { nodes: NodeInfo[]; now: number }) {
  return (
    <div class="table-scroll">
      <table data-testid="nodes">
        <thead>
          <tr>
            <th>Node</th>
            <th>State</th>
            <th class="num" title="Time left on the lease it renews">
              Lease
            </th>
            <th class="num">Sessions</th>
            <th class="num">Ready</th>
            <th class="num" title="Sandboxes it may hold">
              Slots
            </th>
            <th class="num" title="Cores its sandboxes reserve, of what they may">
              Cores
            </th>
            <th class="num" title="Memory its sandboxes reserve, of what they may">
              Memory
            </th>
            <th
              class="num"
              title="What its sandboxes hold, of their hard limit (known for the node answering)"
            >
              In use
            </th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((node) => (
            <tr key={node.name} data-testid="node-row">
              <td title={node.url}>
                {node.name}
                {node.leader ? <span class="badge ready">leader</span> : null}
                {node.memory?.underPressure ? (
                  <span class="badge warn" data-testid="node-pressure">
                    short of memory
                  </span>
                ) : null}
              </td>
              <td>
                {!node.live ? (
                  <span class="badge warn">lost</span>
                ) : node.drained ? (
                  <span class="badge ended">drained</span>
                ) : node.draining ? (
                  <span class="badge warn">draining</span>
                ) : (
                  <span class="badge ready">serving</span>
                )}
              </td>
              <td class="num">{node.live ? duration((Date.parse(node.leaseUntil) - now) / 1000) : '–'}</td>
              <td class="num">{node.load.sessions}</td>
              <td class="num">{node.load.ready}</td>
              <td class="num">{node.maxSandboxes}</td>
              <td class="num" data-testid="node-cpu">
                {ofLimit(cores(node.load.cpu), node.maxCpu === null ? null : cores(node.maxCpu))}
              </td>
              <td class="num" data-testid="node-memory">
                {ofLimit(
                  bytes(node.load.memoryBytes),
                  node.maxMemoryBytes === null ? null : bytes(node.maxMemoryBytes),
                )}
              </td>
              <td class="num" data-testid="node-memory-used">
                {node.memory
                  ? ofLimit(
                      bytes(node.memory.workingSetBytes),
                      node.memory.sandboxLimitBytes === null ? null : bytes(node.memory.sandboxLimitBytes),
                    )
                  : '–'}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
