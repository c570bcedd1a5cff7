/**
 * @module observability/metrics
 * Sandpool's Prometheus metrics, in one registry made per server (never prom-client's global one,
 * so tests and servers in one process stay apart). Labels are bounded: the pool (`<resource
 * group>/<name>`), the container type, warm or cold, a status or an end reason; never an identifier.
 * Gauges of the pools' state are read from the pools when scraped. The events a pool reports
 * (allocations, executions, ends, refusals) go through the `record…` methods, which also feed the
 * dashboard's minute-by-minute timeline.
 */

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

import { Timeline, type ExecutionEnd } from './timeline.js';

/** What a scrape reads from each pool. */
export interface PoolSnapshot {
  /** The pool's ARM id. */
  id: string;
  pool: string;
  containerType: string;
  maxSessions: number;
  readyTarget: number;
  ready: number;
  allocated: number;
  starting: number;
  consecutiveStartFailures: number;
  lastStartError: string | null;
}

/** What a pool's live sandboxes use now. */
export interface PoolUsage {
  pool: string;
  /**
   * Memory of the prepared interpreter (zygote) the pool's sandboxes are forked from, shared with
   * every sandbox forked from it (and with pools of the same preload list); undefined without one.
   */
  preparedMemoryBytes?: number | undefined;
  /** CPU time the live sandboxes have used since they started. */
  cpuSeconds: number;
  memoryBytes: number;
}

/** Sandboxes with the cores and memory they reserve. */
interface Reserved {
  sandboxes: number;
  cpu: number;
  memoryBytes: number;
}

/** What a scrape reads of the cluster (as of the node's last look at the store) and of this node, each gauge its own part. */
export interface ClusterReadings {
  /** Live sandboxes of every node, per pool and state. */
  sandboxes: () => { pool: string; state: string; count: number }[];
  /** Registered nodes by state: serving, draining, lost. */
  nodes: () => Record<string, number>;
  /** What this node's sandboxes may reserve. */
  capacity: Reserved;
  /** What they reserve now. */
  reserved: () => Reserved;
}

/** This node's memory as the memory guard last read it, for /metrics, /readyz and the node list (bytes). */
export interface NodeMemory {
  /** What the node's sandboxes reserve: each its pool's session memory, ready ones included. */
  committedBytes: number;
  /** What they may reserve; a session is admitted only when its size fits. */
  allocatableBytes: number;
  /** The hard limit on all sandboxes together (their parent cgroup's); null when none is set. */
  sandboxLimitBytes: number | null;
  /** What they hold and cannot give back at once. */
  workingSetBytes: number;
  /** The working set above which the node is under pressure; null while the sizes fit in the limit. */
  pressureMarkBytes: number | null;
  /** The node admits no session and ends sandboxes by policy. */
  underPressure: boolean;
}

/** Latencies from a millisecond to a minute: allocation is ms, a cold start 100s of ms. */
const SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Idle times and lifetimes of sessions: seconds to hours, around the usual cooldowns. */
const SESSION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400];

export class Metrics {
  readonly registry = new Registry();
  private readonly allocationSeconds: Histogram<'pool' | 'launch'>;
  private readonly sandboxStartSeconds: Histogram<'pool'>;
  private readonly sandboxStartFailures: Counter<'pool'>;
  private readonly sessionEnds: Counter<'pool' | 'reason'>;
  private readonly poolFullRejections: Counter<'pool'>;
  private readonly executions: Counter<'pool' | 'container_type' | 'status'>;
  private readonly executionSeconds: Histogram<'pool' | 'status'>;
  private readonly httpRequestSeconds: Histogram<'method' | 'route' | 'status'>;
  private readonly sessionIdleSeconds: Histogram<'pool'>;
  private readonly sessionLifetimeSeconds: Histogram<'pool'>;
  private readonly sessionCpuSeconds: Counter<'pool'>;
  private readonly proxyRequests: Counter<'pool' | 'outcome'>;
  private readonly proxyResponseSeconds: Histogram<'pool'>;
  private readonly proxyUpgrades: Counter<'pool' | 'outcome'>;
  private readonly pressureEnds: Counter<'pool' | 'kind'>;
  readonly timeline: Timeline;

  /** With `node`, every series carries it as a label: one value per process, so bounded. */
  constructor(now: () => number = Date.now, node?: string) {
    this.timeline = new Timeline(now);
    if (node !== undefined) this.registry.setDefaultLabels({ node });
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'sandpool_' });
    this.allocationSeconds = new Histogram({
      name: 'sandpool_allocation_seconds',
      help: 'Time to give a new identifier a session; launch is warm (from the ready set) or cold (started on demand).',
      labelNames: ['pool', 'launch'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.sandboxStartSeconds = new Histogram({
      name: 'sandpool_sandbox_start_seconds',
      help: 'Time to start a sandbox until its agent answers.',
      labelNames: ['pool'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.sandboxStartFailures = new Counter({
      name: 'sandpool_sandbox_start_failures_total',
      help: 'Sandbox starts that failed (each is retried with backoff).',
      labelNames: ['pool'],
      registers,
    });
    this.sessionEnds = new Counter({
      name: 'sandpool_session_ends_total',
      help: 'Sessions ended, by typed reason (cooldown, stopped, oom, crashed, killed, poolUpdated, …).',
      labelNames: ['pool', 'reason'],
      registers,
    });
    this.pressureEnds = new Counter({
      name: 'sandpool_memory_pressure_ends_total',
      help: 'Sandboxes this node ended because its sandboxes were short of memory, by kind: ready, session.',
      labelNames: ['pool', 'kind'],
      registers,
    });
    this.poolFullRejections = new Counter({
      name: 'sandpool_pool_full_rejections_total',
      help: 'Requests refused with SessionPoolFull because every session was allocated.',
      labelNames: ['pool'],
      registers,
    });
    this.executions = new Counter({
      name: 'sandpool_executions_total',
      help: 'Executions finished, by status: succeeded, failed (the code raised or exited non-zero), timeout, lost.',
      labelNames: ['pool', 'container_type', 'status'],
      registers,
    });
    this.executionSeconds = new Histogram({
      name: 'sandpool_execution_seconds',
      help: 'Time the code ran inside the sandbox.',
      labelNames: ['pool', 'status'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.sessionIdleSeconds = new Histogram({
      name: 'sandpool_session_idle_seconds',
      help: 'How long each session sat unused before it ended: with reason cooldown this is the cooldown itself; a mass near it means the cooldown could be shorter.',
      labelNames: ['pool'],
      buckets: SESSION_BUCKETS,
      registers,
    });
    this.sessionLifetimeSeconds = new Histogram({
      name: 'sandpool_session_lifetime_seconds',
      help: 'How long each session lived, from allocation to its end.',
      labelNames: ['pool'],
      buckets: SESSION_BUCKETS,
      registers,
    });
    this.sessionCpuSeconds = new Counter({
      name: 'sandpool_session_cpu_seconds_total',
      help: 'CPU time used by sessions that ended, read from their cgroups.',
      labelNames: ['pool'],
      registers,
    });
    this.proxyRequests = new Counter({
      name: 'sandpool_proxy_requests_total',
      help: 'Requests the session proxy forwarded to custom containers, by outcome: the status class the container answered (2xx…5xx), unreachable (no answer), aborted (the client left first).',
      labelNames: ['pool', 'outcome'],
      registers,
    });
    this.proxyResponseSeconds = new Histogram({
      name: 'sandpool_proxy_response_seconds',
      help: 'Time from forwarding a request to the container’s response headers (allocation excluded).',
      labelNames: ['pool'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.proxyUpgrades = new Counter({
      name: 'sandpool_proxy_upgrades_total',
      help: 'Connection upgrades (WebSocket) through the session proxy, by outcome: switched, refused (the container answered without switching), unreachable.',
      labelNames: ['pool', 'outcome'],
      registers,
    });
    this.httpRequestSeconds = new Histogram({
      name: 'sandpool_http_request_seconds',
      help: 'HTTP requests by route template and status.',
      labelNames: ['method', 'route', 'status'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
  }

  recordAllocation(pool: string, warm: boolean, seconds: number): void {
    this.allocationSeconds.observe({ pool, launch: warm ? 'warm' : 'cold' }, seconds);
    this.timeline.recordAllocation(pool, warm, seconds * 1000);
  }

  recordExecution(pool: string, containerType: string, status: ExecutionEnd, seconds: number): void {
    this.executions.inc({ pool, container_type: containerType, status });
    this.executionSeconds.observe({ pool, status }, seconds);
    this.timeline.recordExecution(pool, status);
  }

  recordSandboxStart(pool: string, seconds: number): void {
    this.sandboxStartSeconds.observe({ pool }, seconds);
  }

  recordSandboxStartFailure(pool: string): void {
    this.sandboxStartFailures.inc({ pool });
  }

  /** What an ended session used; CPU only when its cgroup could still be read. */
  recordSessionUsage(
    pool: string,
    usage: { idleSeconds: number; lifetimeSeconds: number; cpuSeconds?: number },
  ): void {
    this.sessionIdleSeconds.observe({ pool }, usage.idleSeconds);
    this.sessionLifetimeSeconds.observe({ pool }, usage.lifetimeSeconds);
    if (usage.cpuSeconds !== undefined) this.sessionCpuSeconds.inc({ pool }, usage.cpuSeconds);
  }

  recordSessionEnd(pool: string, reason: string): void {
    this.sessionEnds.inc({ pool, reason });
    this.timeline.recordEnd(pool, reason);
  }

  recordHttpRequest(request: { method: string; route: string; status: number }, seconds: number): void {
    this.httpRequestSeconds.observe(
      { method: request.method, route: request.route, status: String(request.status) },
      seconds,
    );
  }

  /** A request proxied to a custom container: how it ended, and how long its answer took to start. */
  recordProxyRequest(pool: string, outcome: string, responseSeconds: number | undefined): void {
    this.proxyRequests.inc({ pool, outcome });
    if (responseSeconds !== undefined) this.proxyResponseSeconds.observe({ pool }, responseSeconds);
  }

  recordProxyUpgrade(pool: string, outcome: 'switched' | 'refused' | 'unreachable'): void {
    this.proxyUpgrades.inc({ pool, outcome });
  }

  recordPressureEnd(pool: string, kind: 'ready' | 'session'): void {
    this.pressureEnds.inc({ pool, kind });
  }

  /** Registers the gauges of this node's memory, read from the memory guard on every scrape. */
  /** The audit entries this node recorded that the store has not yet taken. */
  observeAuditBacklog(waiting: () => number): void {
    new Gauge({
      name: 'sandpool_audit_backlog_entries',
      help: 'Audit entries this node recorded that wait in its journal for the store (0 while the store answers).',
      registers: [this.registry],
      collect() {
        this.set(waiting());
      },
    });
  }

  observeMemory(reading: () => NodeMemory): void {
    const registers = [this.registry];
    new Gauge<'kind'>({
      name: 'sandpool_node_memory_bytes',
      help: 'This node’s memory: sandbox_limit (all sandboxes together), working_set (what they hold), committed (their sessions’ sizes) and allocatable (what those may add up to), pressure_mark (the working set at which it admits no session).',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const memory = reading();
        if (memory.sandboxLimitBytes !== null) this.set({ kind: 'sandbox_limit' }, memory.sandboxLimitBytes);
        if (memory.pressureMarkBytes !== null) this.set({ kind: 'pressure_mark' }, memory.pressureMarkBytes);
        this.set({ kind: 'working_set' }, memory.workingSetBytes);
        this.set({ kind: 'committed' }, memory.committedBytes);
        this.set({ kind: 'allocatable' }, memory.allocatableBytes);
      },
    });
    new Gauge({
      name: 'sandpool_node_memory_pressure',
      help: '1 while this node’s sandboxes are short of memory: it admits no session and ends sandboxes by policy.',
      registers,
      collect() {
        this.set(reading().underPressure ? 1 : 0);
      },
    });
  }

  recordPoolFull(pool: string): void {
    this.poolFullRejections.inc({ pool });
    this.timeline.recordPoolFull(pool);
  }

  /**
   * Registers the gauges of the whole cluster, which every node reports alike (aggregate with `max
   * without (node)`), and of this node's capacity and what it reserves.
   */
  observeCluster(readings: ClusterReadings): void {
    const registers = [this.registry];
    new Gauge<'pool' | 'state'>({
      name: 'sandpool_cluster_sessions',
      help: 'Sandboxes of every node by pool and state (ready, allocated), as of this node’s last look at the store.',
      labelNames: ['pool', 'state'],
      registers,
      collect() {
        this.reset();
        for (const { pool, state, count } of readings.sandboxes()) this.set({ pool, state }, count);
      },
    });
    new Gauge<'state'>({
      name: 'sandpool_cluster_nodes',
      help: 'Registered nodes by state: serving, draining, lost (lease run out).',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        for (const [state, count] of Object.entries(readings.nodes())) this.set({ state }, count);
      },
    });
    const resources = (gauge: Gauge<'resource'>, of: Reserved) => {
      gauge.set({ resource: 'sandboxes' }, of.sandboxes);
      gauge.set({ resource: 'cpu' }, of.cpu);
      gauge.set({ resource: 'memory_bytes' }, of.memoryBytes);
    };
    new Gauge<'resource'>({
      name: 'sandpool_node_capacity',
      help: 'What this node’s sandboxes may reserve together: sandboxes, cores (cpu), memory_bytes.',
      labelNames: ['resource'],
      registers,
      collect() {
        resources(this, readings.capacity);
      },
    });
    new Gauge<'resource'>({
      name: 'sandpool_node_reserved',
      help: 'What this node’s sandboxes reserve now, each its pool’s session size, starting ones included.',
      labelNames: ['resource'],
      registers,
      collect() {
        resources(this, readings.reserved());
      },
    });
  }

  /** Registers the gauges of pool state and live resource use, read from the pools on every scrape. */
  observePools(snapshot: () => PoolSnapshot[], liveUsage: () => Promise<PoolUsage[]>): void {
    // The registry collects its gauges at once: one read of every sandbox's cgroup serves them all.
    let reading: Promise<PoolUsage[]> | undefined;
    const usageNow = () =>
      (reading ??= liveUsage().finally(() => {
        reading = undefined;
      }));
    const usageGauge = (name: string, help: string, value: (usage: PoolUsage) => number | undefined) =>
      new Gauge<'pool'>({
        name,
        help,
        labelNames: ['pool'],
        registers: [this.registry],
        async collect() {
          this.reset();
          for (const usage of await usageNow()) {
            const measured = value(usage);
            if (measured !== undefined) this.set({ pool: usage.pool }, measured);
          }
        },
      });
    usageGauge(
      'sandpool_pool_memory_bytes',
      'Memory the pool’s live sandboxes use now, from their cgroups.',
      (u) => u.memoryBytes,
    );
    usageGauge(
      'sandpool_pool_prepared_memory_bytes',
      'Memory of the prepared interpreter (zygote) the pool’s sandboxes are forked from: shared by all of them, and by pools with the same preload list; charged to the zygote’s cgroup, not to theirs.',
      (u) => u.preparedMemoryBytes,
    );
    usageGauge(
      'sandpool_pool_live_cpu_seconds',
      'CPU time the pool’s live sandboxes have used since they started (ended ones: sandpool_session_cpu_seconds_total).',
      (u) => u.cpuSeconds,
    );
    const registers = [this.registry];
    const gauge = <L extends string>(
      name: string,
      help: string,
      labelNames: L[],
      fill: (gauge: Gauge<L>, pools: PoolSnapshot[]) => void,
    ) =>
      new Gauge<L>({
        name,
        help,
        labelNames,
        registers,
        collect() {
          this.reset();
          fill(this, snapshot());
        },
      });
    gauge(
      'sandpool_sessions',
      'Sandboxes by state: ready (prewarmed), allocated, starting.',
      ['pool', 'state'],
      (g, pools) => {
        for (const p of pools) {
          g.set({ pool: p.pool, state: 'ready' }, p.ready);
          g.set({ pool: p.pool, state: 'allocated' }, p.allocated);
          g.set({ pool: p.pool, state: 'starting' }, p.starting);
        }
      },
    );
    gauge(
      'sandpool_pool_max_sessions',
      'maxConcurrentSessions of each pool.',
      ['pool', 'container_type'],
      (g, pools) => {
        for (const p of pools) g.set({ pool: p.pool, container_type: p.containerType }, p.maxSessions);
      },
    );
    gauge(
      'sandpool_pool_ready_target',
      'Ready sandboxes each pool aims to keep now: min(ready, max - allocated).',
      ['pool'],
      (g, pools) => {
        for (const p of pools) g.set({ pool: p.pool }, p.readyTarget);
      },
    );
    gauge(
      'sandpool_pool_pressure',
      'Allocated sessions as a fraction of maxConcurrentSessions (1 = full).',
      ['pool'],
      (g, pools) => {
        for (const p of pools) g.set({ pool: p.pool }, p.maxSessions === 0 ? 0 : p.allocated / p.maxSessions);
      },
    );
    gauge(
      'sandpool_pool_consecutive_start_failures',
      'Sandbox starts that failed in a row (0 when healthy).',
      ['pool'],
      (g, pools) => {
        for (const p of pools) g.set({ pool: p.pool }, p.consecutiveStartFailures);
      },
    );
  }
}
