/**
 * Alternating rounds of closed-loop load against several servers that run side by side, so that
 * whatever else the machine is doing hits every variant alike; each round yields one figure per
 * variant, and comparisons divide within a round before taking the median.
 */
import { groupCpuMicros, processCpuMicros } from './cpu.js'
import { bootstrapInterval, median, medianRatio, ratio } from './stats.js'
import { runWrk } from './wrk.js'

/**
 * @typedef {{ id: string, pgid: number, url: string, script?: string, env?: Record<string, string> }} Target
 * @typedef {{
 *   requestsPerSecond: number, cpuMicrosPerRequest: number, extraCpuMicrosPerRequest: number,
 *   p50Ms: number, p99Ms: number, requests: number, failures: number,
 * }} RoundResult
 */

/**
 * Order of the variants in round `r`: rotated by one every second round, and reversed in every odd
 * round, so that no variant always runs first or always right after the same neighbour (with two
 * variants: AB, BA, BA, AB, ...).
 * @param {number} count
 * @param {number} r
 */
export function roundOrder(count, r) {
  const shift = Math.floor(r / 2)
  const order = Array.from({ length: count }, (_, i) => (i + shift) % count)
  return r % 2 === 1 ? order.reverse() : order
}

/**
 * @param {{
 *   targets: Target[], rounds: number, seconds: number, warmupSeconds: number, connections: number,
 *   warmTogether?: boolean, extraPid?: number | null, log?: (line: string) => void,
 * }} options `extraPid` is a process whose CPU is reported beside the server's (redis-server).
 * @returns {Promise<Map<string, RoundResult[]>>}
 */
export async function runRounds({
  targets,
  rounds,
  seconds,
  warmupSeconds,
  connections,
  warmTogether = false,
  extraPid,
  log,
}) {
  /** @type {Map<string, RoundResult[]>} */
  const results = new Map(targets.map((t) => [t.id, []]))
  // A freshly started Node server spends its first seconds of traffic compiling (a proxy longer than a
  // plain server), which would otherwise land in whichever round comes first. One at a time warms
  // each properly; all at once is the quick run's cheap version.
  if (warmupSeconds > 0 && warmTogether) {
    await Promise.all(
      targets.map((t) =>
        runWrk({ url: t.url, seconds: warmupSeconds, connections: 10, script: t.script, env: t.env }),
      ),
    )
  } else if (warmupSeconds > 0) {
    for (const t of targets) {
      await runWrk({ url: t.url, seconds: warmupSeconds, connections, script: t.script, env: t.env })
    }
  }
  for (let r = 0; r < rounds; r++) {
    for (const i of roundOrder(targets.length, r)) {
      const t = /** @type {Target} */ (targets[i])
      const cpuBefore = groupCpuMicros(t.pgid)
      const extraBefore = extraPid ? processCpuMicros(extraPid) : Number.NaN
      const w = await runWrk({ url: t.url, seconds, connections, script: t.script, env: t.env })
      const cpu = groupCpuMicros(t.pgid) - cpuBefore
      const extra = extraPid ? processCpuMicros(extraPid) - extraBefore : Number.NaN
      const failures =
        w.non2xx +
        w.socketErrors.connect +
        w.socketErrors.read +
        w.socketErrors.write +
        w.socketErrors.timeout
      const result = {
        requestsPerSecond: w.requestsPerSecond,
        cpuMicrosPerRequest: w.requests > 0 ? cpu / w.requests : Number.NaN,
        extraCpuMicrosPerRequest: w.requests > 0 ? extra / w.requests : Number.NaN,
        p50Ms: w.latencyMs.p50,
        p99Ms: w.latencyMs.p99,
        requests: w.requests,
        failures,
      }
      results.get(t.id)?.push(result)
      log?.(
        `  round ${r + 1}/${rounds} ${t.id}: ${Math.round(result.requestsPerSecond)} req/s, ` +
          `${result.cpuMicrosPerRequest.toFixed(1)} µs CPU/req${failures ? `, ${failures} failed` : ''}`,
      )
    }
  }
  return results
}

/** @param {RoundResult[]} rounds */
export function medians(rounds) {
  /** @param {keyof RoundResult} key */
  const m = (key) => median(rounds.map((r) => r[key]))
  return {
    requestsPerSecond: m('requestsPerSecond'),
    cpuMicrosPerRequest: m('cpuMicrosPerRequest'),
    extraCpuMicrosPerRequest: m('extraCpuMicrosPerRequest'),
    p50Ms: m('p50Ms'),
    p99Ms: m('p99Ms'),
    failures: rounds.reduce((sum, r) => sum + r.failures, 0),
    rounds: rounds.length,
  }
}

/**
 * Per-round comparison of `a` against `b`: CPU and throughput ratios (medians of per-round ratios),
 * and, given a baseline such as the bare framework, the ratio of what each adds on top of it. That
 * one is the ratio of the two medians of per-round added CPU, not the median of per-round ratios:
 * what a limiter adds is a few µs on a noisy ~35 µs, so a single round's difference can be near
 * zero or negative and its ratio anything. `addedCpuInterval` is a 90 % bootstrap interval of it,
 * resampling rounds (pairs stay together).
 * @param {RoundResult[]} a
 * @param {RoundResult[]} b
 * @param {RoundResult[]} [base]
 */
export function compare(a, b, base) {
  const cpu = (/** @type {RoundResult[]} */ x) => x.map((r) => r.cpuMicrosPerRequest)
  const out = {
    cpuRatio: medianRatio(cpu(a), cpu(b)),
    throughputRatio: medianRatio(
      a.map((r) => r.requestsPerSecond),
      b.map((r) => r.requestsPerSecond),
    ),
    addedCpuRatio: Number.NaN,
    /** @type {[number, number]} */
    addedCpuInterval: [Number.NaN, Number.NaN],
  }
  if (base) {
    const added = (/** @type {RoundResult[]} */ x) =>
      cpu(x).map((v, i) => v - (base[i]?.cpuMicrosPerRequest ?? Number.NaN))
    const addedA = added(a)
    const addedB = added(b)
    const ratioOf = (/** @type {number[]} */ indices) =>
      ratio(
        median(indices.map((i) => addedA[i] ?? Number.NaN)),
        median(indices.map((i) => addedB[i] ?? Number.NaN)),
      )
    out.addedCpuRatio = ratio(median(addedA), median(addedB))
    out.addedCpuInterval = bootstrapInterval(ratioOf, Math.min(addedA.length, addedB.length))
  }
  return out
}

/** Median over rounds of (variant CPU − baseline CPU) per request. */
export function addedCpu(/** @type {RoundResult[]} */ a, /** @type {RoundResult[]} */ base) {
  return median(a.map((r, i) => r.cpuMicrosPerRequest - (base[i]?.cpuMicrosPerRequest ?? Number.NaN)))
}
