/**
 * The programs each suite runs, checked before anything starts: a missing one would otherwise
 * surface minutes in as "taskset: failed to execute wrk".
 */

import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'

/** Program → Debian package that ships it. */
export const PACKAGE_OF = /** @type {const} */ ({
  wrk: 'wrk',
  nginx: 'nginx',
  haproxy: 'haproxy',
  taskset: 'util-linux',
})

/** What each suite cannot run without (taskset is optional: without it nothing is pinned). */
export const TOOLS_OF = /** @type {const} */ ({
  'rate-limit': ['wrk'],
  forward: ['wrk', 'nginx'],
  latency: ['nginx'],
  balance: ['nginx', 'haproxy'],
})

/** Whether an executable of that name is on the PATH (or in /usr/sbin, where Debian puts nginx). */
export function onPath(/** @type {string} */ name, env = process.env) {
  const dirs = [...(env.PATH ?? '').split(delimiter), '/usr/sbin', '/sbin']
  for (const dir of dirs) {
    if (!dir) continue
    try {
      accessSync(join(dir, name), constants.X_OK)
      return true
    } catch {}
  }
  return false
}

/**
 * The tools the selected suites need that are missing, and the message that says how to get them;
 * null when nothing is missing.
 * @param {readonly (keyof typeof TOOLS_OF)[]} suites
 * @param {(name: string) => boolean} [exists]
 */
export function missingTools(suites, exists = onPath) {
  /** @type {Map<string, string[]>} */
  const neededBy = new Map()
  for (const suite of suites) {
    for (const tool of TOOLS_OF[suite]) {
      if (exists(tool)) continue
      neededBy.set(tool, [...(neededBy.get(tool) ?? []), suite])
    }
  }
  if (neededBy.size === 0) return null
  const lines = [...neededBy].map(([tool, by]) => `  ${tool} (needed by ${by.join(', ')})`)
  const packages = [...neededBy.keys()].map(
    (t) => PACKAGE_OF[/** @type {keyof typeof PACKAGE_OF} */ (t)] ?? t,
  )
  const runnable = Object.entries(TOOLS_OF)
    .filter(([, tools]) => tools.every((t) => !neededBy.has(t) && exists(t)))
    .map(([suite]) => suite)
  return {
    tools: [...neededBy.keys()],
    message:
      `The benchmarks need programs that are not installed:\n${lines.join('\n')}\n` +
      `On Debian or Ubuntu: apt-get update && apt-get install -y ${packages.join(' ')}` +
      (runnable.length ? `\n(or run only what is installed: --only ${runnable.join(',')})` : ''),
  }
}
