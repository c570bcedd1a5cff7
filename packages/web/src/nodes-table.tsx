/**
 * @module nodes-table
 * The nodes sharing the store: each one's lease and whether it is live, whether it drains, and for
 * the node answering, what it holds against its capacity.
 */

import type { NodeInfo } from '@sandpool/sdk';

import { duration } from './format.js';

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
            <th class="num">Capacity</th>
          </tr>
        </thead>
        <tbody>
          {nodes.map((node) => (
            <tr key={node.name} data-testid="node-row">
              <td title={node.url}>
                {node.name}
                {node.leader ? <span class="badge ready">leader</span> : null}
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
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
