/**
 * Rate-limit overhead: the same route and the same never-reached limit, bare, with the peer a user
 * would pick instead, and with tollgate; one window and two ("200 per day, 50 per hour" scaled up).
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { num, table, times } from './lib/markdown.js'
import { jsonLine, profileArgs, SERVER_CORE, startProcess } from './lib/processes.js'
import { addedCpu, compare, medians, runRounds } from './lib/rounds.js'

const serverScript = fileURLToPath(new URL('./servers/rate-limit-server.js', import.meta.url))

/**
 * @typedef {{ id: string, label: string }} Variant
 * @typedef {{ a: string, b: string, note?: string }} Comparison
 */

/** @type {Array<{ name: string, bare: string, variants: Variant[], comparisons: Comparison[] }>} */
export const GROUPS = [
  {
    name: 'Fastify',
    bare: 'fastify-bare',
    variants: [
      { id: 'fastify-bare', label: 'bare Fastify' },
      { id: 'fastify-peer', label: '@fastify/rate-limit, memory' },
      { id: 'fastify-tollgate', label: 'tollgate, memory' },
      { id: 'fastify-peer-redis', label: '@fastify/rate-limit, Redis' },
      { id: 'fastify-tollgate-redis', label: 'tollgate, Redis' },
      { id: 'fastify-peer-2w', label: '2 windows: 2 × @fastify/rate-limit, memory' },
      { id: 'fastify-tollgate-2w', label: '2 windows: tollgate, memory' },
      { id: 'fastify-peer-2w-redis', label: '2 windows: 2 × @fastify/rate-limit, Redis' },
      { id: 'fastify-tollgate-2w-redis', label: '2 windows: tollgate, Redis' },
    ],
    comparisons: [
      { a: 'fastify-tollgate', b: 'fastify-peer' },
      { a: 'fastify-tollgate-redis', b: 'fastify-peer-redis' },
      { a: 'fastify-tollgate-2w', b: 'fastify-peer-2w' },
      { a: 'fastify-tollgate-2w-redis', b: 'fastify-peer-2w-redis' },
    ],
  },
  {
    name: 'Express',
    bare: 'express-bare',
    variants: [
      { id: 'express-bare', label: 'bare Express' },
      { id: 'express-peer', label: 'express-rate-limit (draft-8), memory' },
      { id: 'express-tollgate', label: 'tollgate, memory' },
      { id: 'express-peer-redis', label: 'express-rate-limit + rate-limit-redis' },
      { id: 'express-tollgate-redis', label: 'tollgate, Redis' },
      { id: 'express-peer-2w', label: '2 windows: 2 × express-rate-limit, memory' },
      { id: 'express-tollgate-2w', label: '2 windows: tollgate, memory' },
      { id: 'express-peer-2w-redis', label: '2 windows: 2 × express-rate-limit + rate-limit-redis' },
      { id: 'express-tollgate-2w-redis', label: '2 windows: tollgate, Redis' },
    ],
    comparisons: [
      { a: 'express-tollgate', b: 'express-peer' },
      { a: 'express-tollgate-redis', b: 'express-peer-redis' },
      { a: 'express-tollgate-2w', b: 'express-peer-2w' },
      { a: 'express-tollgate-2w-redis', b: 'express-peer-2w-redis' },
    ],
  },
]

function redisPid() {
  try {
    const info = execFileSync('redis-cli', ['info', 'server'], { encoding: 'utf8', timeout: 2000 })
    const pid = Number(/process_id:(\d+)/.exec(info)?.[1])
    return Number.isInteger(pid) ? pid : null
  } catch {
    return null
  }
}

/** Whether Redis answers at REDIS_URL; without it the Redis variants are left out, and said so. */
export async function redisAvailable() {
  const { Redis } = await import('ioredis')
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 2000,
  })
  try {
    await redis.connect()
    return (await redis.ping()) === 'PONG'
  } catch {
    return false
  } finally {
    redis.disconnect()
  }
}

/** Removes the run's counters from Redis; they would expire, but only after a day. */
export async function deleteKeys(/** @type {string} */ pattern) {
  const { Redis } = await import('ioredis')
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', {
    lazyConnect: true,
    maxRetriesPerRequest: 1,
  })
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500)
      cursor = next
      if (keys.length) await redis.del(...keys)
    } while (cursor !== '0')
  } catch {
    // Redis being gone already shows as failed variants; nothing to clean then.
  } finally {
    redis.disconnect()
  }
}

/**
 * @param {{ quick: boolean, log: (line: string) => void, runId: string, rounds?: number, seconds?: number }} options
 */
export async function runRateLimitBench({ quick, log, runId, rounds, seconds }) {
  // A limiter adds a few µs to a request of ~40 µs on a shared machine: 4 rounds of 2 s left the
  // added-CPU ratio moving by ±30% between runs, so a full run takes more and longer rounds.
  const settings = quick
    ? { rounds: rounds ?? 1, seconds: seconds ?? 1, warmupSeconds: 1, warmTogether: true, connections: 50 }
    : { rounds: rounds ?? 8, seconds: seconds ?? 3, warmupSeconds: 2, warmTogether: false, connections: 50 }
  const extraPid = redisPid()
  /** @type {string[]} */
  const sections = []
  /** @type {Record<string, unknown>} */
  const raw = {}
  /** @type {string[]} */
  const losses = []

  // Every variant of both groups boots at once (on either core, then moves to the server core), so
  // the second group does not wait for its own start; idle servers cost the measured one nothing.
  /** @type {import('./lib/processes.js').ManagedProcess[]} */
  const servers = []
  const withRedis = await redisAvailable()
  if (!withRedis) log('rate-limit: Redis does not answer at REDIS_URL; leaving out the Redis variants')
  const groups = GROUPS.map((g) => {
    if (withRedis) return g
    const kept = (/** @type {string} */ id) => !id.endsWith('-redis')
    return {
      ...g,
      variants: g.variants.filter((v) => kept(v.id)),
      comparisons: g.comparisons.filter((c) => kept(c.a) && kept(c.b)),
    }
  })
  try {
    const all = groups.flatMap((g) => g.variants)
    log(`rate-limit: starting ${all.length} servers`)
    const started = await Promise.allSettled(
      all.map((v) =>
        startProcess({
          name: v.id,
          cmd: process.execPath,
          args: [...profileArgs(`rate-limit-${v.id}`), serverScript, v.id, `tgbench:${runId}:${v.id}:`],
          core: SERVER_CORE,
          readyLine: jsonLine,
          readyTimeoutMs: 30_000,
          pinAfterReady: true,
        }),
      ),
    )
    for (const s of started) if (s.status === 'fulfilled') servers.push(s.value)
    const failed = started.find((s) => s.status === 'rejected')
    if (failed) throw /** @type {PromiseRejectedResult} */ (failed).reason
    const byId = new Map(
      all.map((v, i) => [v.id, /** @type {import('./lib/processes.js').ManagedProcess} */ (servers[i])]),
    )

    for (const group of groups) {
      log(`rate-limit: ${group.name}, ${group.variants.length} variants`)
      const targets = group.variants.map((v) => {
        const s = /** @type {import('./lib/processes.js').ManagedProcess} */ (byId.get(v.id))
        return { id: v.id, pgid: s.pid, url: `http://127.0.0.1:${s.ready.port}/limited` }
      })
      const results = await runRounds({ targets, ...settings, extraPid, log })
      raw[group.name] = Object.fromEntries(results)
      const base = results.get(group.bare) ?? []

      const rows = group.variants.map((v) => {
        const rounds = results.get(v.id) ?? []
        const m = medians(rounds)
        return [
          v.label,
          num(m.requestsPerSecond),
          num(m.cpuMicrosPerRequest),
          v.id === group.bare ? '–' : num(addedCpu(rounds, base)),
          v.id.endsWith('-redis') ? num(m.extraCpuMicrosPerRequest) : '–',
          num(m.p99Ms),
          String(m.failures),
        ]
      })
      const label = (/** @type {string} */ id) => group.variants.find((v) => v.id === id)?.label ?? id
      const comparisonRows = group.comparisons.map((c) => {
        const cmp = compare(results.get(c.a) ?? [], results.get(c.b) ?? [], base)
        // A comparison across different stores is shown, but is no like-for-like loss.
        if (cmp.cpuRatio > 1.05 && !c.note) {
          losses.push(
            `${group.name}, ${label(c.a)}: ${times(cmp.cpuRatio)} the CPU per request of ${label(c.b)}` +
              (c.note ? ` (${c.note})` : ''),
          )
        }
        return [
          label(c.a),
          label(c.b) + (c.note ? ` (${c.note})` : ''),
          times(cmp.cpuRatio),
          `${times(cmp.addedCpuRatio)} (${cmp.addedCpuInterval.map((v) => v.toFixed(2)).join('–')})`,
          times(cmp.throughputRatio),
        ]
      })
      sections.push(
        `### ${group.name}\n\n` +
          table(
            [
              'variant',
              'req/s',
              'server CPU µs/req',
              'added over bare µs/req',
              'Redis CPU µs/req',
              'p99 ms',
              'failed',
            ],
            rows,
          ) +
          '\n\n' +
          table(
            [
              'tollgate variant',
              'compared with',
              'CPU/req ratio',
              'added-CPU ratio (90 % interval)',
              'req/s ratio',
            ],
            comparisonRows,
            ['l', 'l', 'r', 'r', 'r'],
          ),
      )
    }
  } finally {
    await Promise.all(servers.map((s) => s.stop()))
    await deleteKeys(`tgbench:${runId}:*`)
  }

  const intro =
    `Closed loop: wrk, 1 thread, ${settings.connections} connections, GET of a small JSON answer, ` +
    `${settings.rounds} round(s) of ${settings.seconds} s per variant after a ${settings.warmupSeconds} s warm-up ` +
    `${settings.warmTogether ? 'of all variants at once' : 'of each'}, ` +
    'variants alternating within each round. Limits are far above what a run sends, so nothing is ' +
    'rejected. One window: `100000000 per hour`; two windows: `1000000000 per day, 100000000 per hour`. ' +
    'Figures are medians over rounds; CPU and req/s ratios are medians of the per-round ratios (below 1 ' +
    'means tollgate costs less). "Added over bare" is the variant\'s CPU per request minus the bare ' +
    "framework's in the same round: the cost of the limiter itself. The added-CPU ratio divides the two " +
    "medians of it, with a 90 % bootstrap interval over rounds; a single round's added CPU can be near " +
    "zero, so per-round ratios of it are not used. Redis CPU is redis-server's own time per request, not " +
    "included in the server's."
  const missing = withRedis
    ? ''
    : '\n\n**Redis did not answer at `REDIS_URL`: the Redis variants were not run.**'
  return {
    title: 'Rate-limit overhead',
    markdown: `${intro}${missing}\n\n${sections.join('\n\n')}`,
    losses,
    raw,
  }
}
