/** What the results were measured on, for the header of RESULTS.md. */
import { execFileSync, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { fileURLToPath } from 'node:url'

const root = fileURLToPath(new URL('../../', import.meta.url))

/** @param {string} cmd @param {string[]} args */
function firstLine(cmd, args) {
  // nginx -v writes to stderr, the others to stdout: read both.
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 })
  if (r.error) return 'not found'
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? ''
}

/** @param {string} name */
export function packageVersion(name) {
  try {
    const pkg = JSON.parse(readFileSync(`${root}node_modules/${name}/package.json`, 'utf8'))
    return String(pkg.version)
  } catch {
    return 'not installed'
  }
}

function cpuModel() {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('model name'))
    return line?.split(':')[1]?.trim() ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

function gitCommit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim()
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'packages'], {
      cwd: root,
      encoding: 'utf8',
    }).trim()
    return dirty ? `${head} (packages/ with uncommitted changes)` : head
  } catch {
    return 'unknown'
  }
}

export function describeMachine() {
  return {
    date: new Date().toISOString(),
    // Not availableParallelism(): that follows this process's affinity, which run.js narrows.
    cpus: cpus().length,
    cpuModel: cpuModel(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    loadAverage: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
    node: process.version,
    nginx: firstLine('nginx', ['-v']).replace(/^nginx version: /, ''),
    haproxy: firstLine('haproxy', ['-v']).replace(/ - https.*$/, ''),
    wrk: firstLine('wrk', ['-v']).replace(/ Copyright.*$/, ''),
    commit: gitCommit(),
    packages: Object.fromEntries(
      [
        'fastify',
        'express',
        '@fastify/rate-limit',
        'express-rate-limit',
        '@fastify/reply-from',
        '@fastify/http-proxy',
        'http-proxy-middleware',
        'undici',
        'ioredis',
      ].map((name) => [name, packageVersion(name)]),
    ),
  }
}
