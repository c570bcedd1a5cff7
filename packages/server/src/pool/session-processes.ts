/**
 * @module pool/session-processes
 * A session's background processes, as the API works on them: in a session the request reached (its
 * cooldown reset meanwhile) of a code-interpreter pool, run by the agent inside its sandbox, so they
 * share its limits and end with it. Requests wait for a command the session is running, as
 * executions do.
 */

import { AppError, ErrorCode } from '../errors.js';
import type { OutputSlice, ProcessInfo, ProcessRequest, ProcessSignal } from '../interpreter/protocol.js';
import type { Instance } from './instance.js';
import type { PoolManager } from './pool-manager.js';
import type { Session } from './sessions.js';

export type { OutputSlice, ProcessSignal } from '../interpreter/protocol.js';

export interface BackgroundProcess {
  pid: number;
  command: string;
  running: boolean;
  exitCode: number | null;
  startedAt: Date;
  endedAt: Date | null;
}

export interface ProcessOutput {
  process: BackgroundProcess;
  stdout: OutputSlice;
  stderr: OutputSlice;
}

const fromAgent = (info: ProcessInfo): BackgroundProcess => ({
  pid: info.pid,
  command: info.command,
  running: info.running,
  exitCode: info.exitCode,
  startedAt: new Date(info.startedAt * 1000),
  endedAt: info.endedAt === null ? null : new Date(info.endedAt * 1000),
});

/** The background processes of one session's sandbox. */
export class SessionProcesses {
  constructor(private readonly instance: Instance) {}

  private async one(request: ProcessRequest): Promise<BackgroundProcess> {
    return fromAgent((await this.instance.processes(request)).process!);
  }

  start(command: string, shell: 'bash' | 'sh'): Promise<BackgroundProcess> {
    return this.one({ op: 'process.start', command, shell });
  }

  async list(): Promise<BackgroundProcess[]> {
    return ((await this.instance.processes({ op: 'process.list' })).processes ?? []).map(fromAgent);
  }

  async output(
    pid: number,
    from: { stdoutOffset: number; stderrOffset: number; maxChars: number },
  ): Promise<ProcessOutput> {
    const reply = await this.instance.processes({ op: 'process.output', pid, ...from });
    // The agent is not trusted to keep to the bound it was given.
    const bounded = (slice: OutputSlice): OutputSlice => {
      const text = slice.text.slice(0, from.maxChars);
      return { ...slice, text, next: slice.from + text.length };
    };
    return {
      process: fromAgent(reply.process!),
      stdout: bounded(reply.stdout!),
      stderr: bounded(reply.stderr!),
    };
  }

  write(pid: number, text: string, close: boolean): Promise<BackgroundProcess> {
    return this.one({ op: 'process.stdin', pid, text, close });
  }

  kill(pid: number, signal: ProcessSignal): Promise<BackgroundProcess> {
    return this.one({ op: 'process.kill', pid, signal });
  }
}

/**
 * Refuses a pool whose agent runs no background processes (only the Python agent of PythonLTS and
 * Shell pools does), before a session is reached for the request.
 */
export function requireProcesses(manager: PoolManager): void {
  if (manager.containerType !== 'PythonLTS' && manager.containerType !== 'Shell') {
    throw new AppError(
      ErrorCode.InvalidParameter,
      `session pool ${manager.name} is a ${manager.containerType} pool; background processes run in PythonLTS and Shell pools`,
    );
  }
}

/** Runs `work` on the session's background processes, keeping the session alive meanwhile. */
export function onSessionProcesses<T>(
  manager: PoolManager,
  session: Session,
  work: (processes: SessionProcesses) => Promise<T>,
): Promise<T> {
  requireProcesses(manager);
  return manager.use(session, () => work(new SessionProcesses(session.instance)), { serialize: false });
}
