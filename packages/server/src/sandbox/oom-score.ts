/**
 * @module sandbox/oom-score
 * Who the kernel's OOM killer takes first when the whole host runs short: every sandbox before the
 * server and its helpers (conmon, socat, the DNS filter), which inherit the server's score.
 */

import { readFile, writeFile } from 'node:fs/promises';

/** Each sandbox's process starts at the highest score: the kernel's first choice host-wide. */
export const SANDBOX_OOM_SCORE_ADJ = 1000;

/** The server's score: far below any process's, short of never (-1000). */
const SERVER_OOM_SCORE_ADJ = -900;

/**
 * Lowers this process's OOM score and returns the score in force. Lowering it takes
 * CAP_SYS_RESOURCE, which root lacks on some hosts (this machine type among them); the score then
 * stays where it was, and the sandboxes' highest score still keeps the kernel off the server.
 */
export async function protectFromOomKiller(path = '/proc/self/oom_score_adj'): Promise<number> {
  await writeFile(path, String(SERVER_OOM_SCORE_ADJ)).catch(() => undefined);
  return Number((await readFile(path, 'utf8')).trim());
}
