/**
 * wrk as the closed-loop load generator: written in C, one thread of it saturates a Node server on
 * the other core while using less CPU than any Node client would.
 */
import { spawn } from 'node:child_process'
import { pinnedCommand } from './processes.js'

const UNIT_MS = /** @type {Record<string, number>} */ ({ us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 })

/**
 * "1.23ms" -> 1.23, "850.00us" -> 0.85, "2.01s" -> 2010.
 * @param {string} text
 */
export function parseDurationMs(text) {
  const m = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim())
  if (!m) return Number.NaN
  return Number(m[1]) * /** @type {number} */ (UNIT_MS[/** @type {string} */ (m[2])])
}

/**
 * Reads the text wrk prints with `--latency`.
 * @param {string} text
 */
export function parseWrkOutput(text) {
  /** @type {Record<string, number>} */
  const latencyMs = {}
  for (const m of text.matchAll(/^\s*(\d+(?:\.\d+)?)%\s+(\S+)\s*$/gm)) {
    latencyMs[`p${m[1]}`] = parseDurationMs(/** @type {string} */ (m[2]))
  }
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(text)
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text)
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text)
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  if (!done || !rps) throw new Error(`could not read wrk's output:\n${text}`)
  return {
    requests: Number(done[1]),
    durationMs: parseDurationMs(`${done[2]}${done[3]}`),
    requestsPerSecond: Number(rps[1]),
    latencyMs: {
      p50: latencyMs.p50 ?? Number.NaN,
      p75: latencyMs.p75 ?? Number.NaN,
      p90: latencyMs.p90 ?? Number.NaN,
      p99: latencyMs.p99 ?? Number.NaN,
    },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
  }
}

/**
 * Runs wrk once on the load core and resolves with its parsed output.
 * @param {{
 *   url: string, seconds: number, connections?: number, script?: string,
 *   env?: Record<string, string>, core?: number | null, timeoutSeconds?: number,
 * }} options
 */
export function runWrk({ url, seconds, connections = 50, script, env, core = 1, timeoutSeconds = 10 }) {
  const args = ['-t1', `-c${connections}`, `-d${Math.max(1, Math.round(seconds))}s`, '--latency']
  args.push(`--timeout`, `${timeoutSeconds}s`)
  if (script) args.push('-s', script)
  args.push(url)
  const [cmd, argv] = pinnedCommand(core, 'wrk', args)
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    let err = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      err += d
    })
    // wrk stops itself after -d; this only guards against a wedged server never letting go.
    const guard = setTimeout(() => child.kill('SIGKILL'), (seconds + timeoutSeconds + 5) * 1000)
    child.on('error', (e) => {
      clearTimeout(guard)
      reject(e)
    })
    child.on('close', (code) => {
      clearTimeout(guard)
      if (code !== 0) return reject(new Error(`wrk exited with ${code}: ${err || out}`))
      try {
        resolve(parseWrkOutput(out))
      } catch (e) {
        reject(e)
      }
    })
  })
}
