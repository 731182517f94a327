/**
 * Balancing quality on backends that behave like GPU model servers: unequal capacities, a FIFO queue
 * behind each, a time to first token, per-token time that grows with the batch, and heavy-tailed
 * answer lengths. Open-loop Poisson arrivals at fractions of the pool's capacity; every tollgate
 * strategy beside nginx (round robin, least_conn) and haproxy (leastconn) on the very same servers
 * and the very same arrival times; then two fault phases.
 */
import { fileURLToPath } from 'node:url'
import { meanParetoTokens, poolCapacity, serverCapacity } from './lib/capacity.js'
import { num, pct, table, times } from './lib/markdown.js'
import { runOpenLoop } from './lib/open-loop-client.js'
import { jsonLine, LOAD_CORE, profileArgs, SERVER_CORE, startProcess } from './lib/processes.js'
import { startHaproxy, startNginx } from './lib/proxy-configs.js'
import { ratio, summarize } from './lib/stats.js'

const root = fileURLToPath(new URL('../', import.meta.url))
const fakeServerScript = `${root}examples/fake-model-server.js`
const gatewayScript = fileURLToPath(new URL('./servers/forward-server.js', import.meta.url))

/** Shape shared by every backend; only the capacity differs. */
const MODEL = { ttftMs: 20, tptMs: 2, batchSlowdown: 0.1, tokens: { min: 16, alpha: 1.5, max: 1000 } }
const BACKENDS = [
  { name: 'b2', capacity: 2, seed: 2 },
  { name: 'b4', capacity: 4, seed: 4 },
  { name: 'b8', capacity: 8, seed: 8 },
]
/** The backend made 5× slower in the "slow" phase, and the one killed in the "kill" phase. */
const SLOWED = 'b8'
const KILLED = 'b4'
const SLOWDOWN = 5

const STRATEGIES = [
  'round-robin',
  'random',
  'least-connections',
  'power-of-two',
  'least-latency',
  'consistent-hash',
]
const LOAD_AWARE = new Set(['least-connections', 'power-of-two', 'least-latency', 'consistent-hash'])
/**
 * @typedef {{ id: string, label: string, kind: 'tollgate' | 'nginx' | 'haproxy', strategy: string }} Config
 * @type {Config[]}
 */
const CONFIGS = [
  ...STRATEGIES.map((s) => ({
    id: `tollgate:${s}`,
    label: `tollgate ${s}`,
    kind: /** @type {const} */ ('tollgate'),
    strategy: s,
  })),
  { id: 'nginx:round-robin', label: 'nginx round robin', kind: 'nginx', strategy: 'round-robin' },
  { id: 'nginx:least_conn', label: 'nginx least_conn', kind: 'nginx', strategy: 'least_conn' },
  { id: 'haproxy:leastconn', label: 'haproxy leastconn', kind: 'haproxy', strategy: 'leastconn' },
]

/**
 * @typedef {{ id: string, title: string, load: number, fault?: 'slow' | 'kill' }} Phase
 */

/** @param {{ name: string, capacity: number, seed: number }} b @param {number} factor @param {number} port */
function backendArgs(b, factor, port) {
  const t = MODEL.tokens
  return [
    fakeServerScript,
    '--port',
    String(port),
    '--name',
    b.name,
    '--capacity',
    String(b.capacity),
    '--ttft',
    String(MODEL.ttftMs * factor),
    '--tpt',
    String(MODEL.tptMs * factor),
    '--batch-slowdown',
    String(MODEL.batchSlowdown),
    // The client draws each answer's length and sends it as max_tokens; this only has to be longer.
    '--tokens',
    String(t.max * 10),
    '--seed',
    String(b.seed),
  ]
}

/** @param {{ name: string, capacity: number, seed: number }} b @param {number} factor @param {number} port */
async function startBackend(b, factor, port) {
  return startProcess({
    name: `backend ${b.name}`,
    cmd: process.execPath,
    args: backendArgs(b, factor, port),
    core: LOAD_CORE,
    readyLine: (line) => (line.startsWith('http://') ? line.trim() : undefined),
  })
}

/**
 * @param {{ quick: boolean, log: (line: string) => void, balancers?: string[] }} options `balancers`
 *   keeps only the configurations whose id (e.g. `tollgate:least-latency`, `nginx:least_conn`)
 *   contains one of these strings
 */
export async function runBalanceBench({ quick, log, balancers }) {
  const configs = balancers?.length ? CONFIGS.filter((c) => balancers.some((b) => c.id.includes(b))) : CONFIGS
  if (configs.length === 0)
    throw new Error(
      `--balancers ${balancers?.join(',')} matches none of ${CONFIGS.map((c) => c.id).join(', ')}`,
    )
  const meanTokens = meanParetoTokens(MODEL.tokens.min, MODEL.tokens.alpha, MODEL.tokens.max)
  const shapes = BACKENDS.map((b) => ({ ...MODEL, capacity: b.capacity }))
  const capacity = poolCapacity(shapes, meanTokens)
  const phaseMs = quick ? 800 : 3500
  const timeoutMs = quick ? 10_000 : 20_000
  /** @type {Phase[]} */
  const phases = quick
    ? [{ id: 'load-80', title: '80% load', load: 0.8 }]
    : [
        { id: 'load-50', title: '50% load', load: 0.5 },
        { id: 'load-80', title: '80% load', load: 0.8 },
        { id: 'load-95', title: '95% load', load: 0.95 },
        {
          id: 'slow',
          title: `${SLOWED} ${SLOWDOWN}× slower, 50% of the original capacity`,
          load: 0.5,
          fault: 'slow',
        },
        { id: 'kill', title: `${KILLED} killed a third into the phase, 50% load`, load: 0.5, fault: 'kill' },
      ]

  /** @type {Map<string, import('./lib/processes.js').ManagedProcess>} */
  const backends = new Map()
  /** @type {Map<string, number>} */
  const ports = new Map()
  /** @type {Array<{ stop: () => Promise<void> }>} */
  const gateways = []
  /** @type {Record<string, Record<string, any>>} */
  const results = {}
  /** @type {string[]} */
  const skipped = []

  const restartBackend = async (/** @type {string} */ name, /** @type {number} */ factor) => {
    const spec = /** @type {(typeof BACKENDS)[number]} */ (BACKENDS.find((b) => b.name === name))
    await backends.get(name)?.stop()
    backends.set(name, await startBackend(spec, factor, /** @type {number} */ (ports.get(name))))
  }

  try {
    for (const b of BACKENDS) {
      const proc = await startBackend(b, 1, 0)
      backends.set(b.name, proc)
      ports.set(b.name, Number(new URL(proc.ready).port))
    }
    const upstreams = BACKENDS.map((b) => `127.0.0.1:${ports.get(b.name)}`)
    const urls = upstreams.map((u) => `http://${u}`)
    log(
      `balance: backends ${BACKENDS.map((b, i) => `${b.name}=${urls[i]}`).join(', ')}; pool capacity ${capacity.toFixed(1)} req/s`,
    )

    // Every gateway starts now, side by side, and idles until its turn; only one carries load at a time.
    const started = await Promise.all(
      configs.map(async (c) => {
        try {
          return await startGateway(c, upstreams, urls)
        } catch (err) {
          // A missing nginx or haproxy leaves out that balancer, not the whole suite.
          const why = err instanceof Error ? err.message.split('\n')[0] : String(err)
          return { stop: async () => {}, port: 0, skip: `could not start (${why})` }
        }
      }),
    )
    gateways.push(...started)

    for (const [i, config] of configs.entries()) {
      const gw = /** @type {(typeof started)[number]} */ (started[i])
      if (gw.skip) {
        skipped.push(`${config.label}: ${gw.skip}`)
        log(`balance: skipping ${config.id}: ${gw.skip}`)
        continue
      }
      const url = `http://127.0.0.1:${gw.port}/v1/chat/completions`
      results[config.id] = {}
      // A few requests first, not counted: they warm the gateway and replace any keep-alive
      // connection to a backend restarted by an earlier configuration's fault phases (which a quick
      // run does not have).
      if (!quick)
        await runClient(
          { url, ratePerSecond: 30, durationMs: 400, seed: 999, timeoutMs, tokens: MODEL.tokens },
          () => {},
        )
      // One seed per phase, the same for every balancer: the same arrivals, sessions and lengths.
      for (const [p, phase] of phases.entries()) {
        if (phase.fault === 'slow') {
          await restartBackend(SLOWED, SLOWDOWN)
          await runClient(
            { url, ratePerSecond: 30, durationMs: 300, seed: 998, timeoutMs, tokens: MODEL.tokens },
            () => {},
          )
        }
        const rate = capacity * phase.load
        const events = phase.fault === 'kill' ? [{ atMs: phaseMs / 3, name: 'kill' }] : []
        const outcome = await runClient(
          {
            url,
            ratePerSecond: rate,
            durationMs: phaseMs,
            seed: p + 1,
            timeoutMs,
            events,
            tokens: MODEL.tokens,
          },
          (event) => {
            if (event === 'kill') void backends.get(KILLED)?.kill()
          },
        )
        if (phase.fault === 'slow') await restartBackend(SLOWED, 1)
        if (phase.fault === 'kill') await restartBackend(KILLED, 1)
        const s = summarizePhase(outcome)
        results[config.id][phase.id] = s
        log(
          `  ${config.id}, ${phase.title}: ${s.requests} req, TTFT p50 ${num(s.ttft.p50)} p99 ${num(s.ttft.p99)} ms, ` +
            `e2e p99 ${num(s.e2e.p99)} ms, ${s.errors} errors, shares ${BACKENDS.map((b) => `${b.name} ${pct(s.shares[b.name] ?? 0)}`).join(' ')}`,
        )
      }
    }
  } finally {
    await Promise.all([...gateways.map((g) => g.stop()), ...[...backends.values()].map((b) => b.stop())])
  }

  return {
    title: 'Balancing quality',
    markdown: report({ phases, results, skipped, capacity, meanTokens, phaseMs, shapes }),
    losses: losses(results, phases),
    raw: { capacity, meanTokens, results },
  }
}

/**
 * @param {Config} c
 * @param {string[]} upstreams host:port of each backend
 * @param {string[]} urls the same as URLs
 * @returns {Promise<{ stop: () => Promise<void>, port: number, skip: string | null }>}
 */
async function startGateway(c, upstreams, urls) {
  if (c.kind === 'nginx') {
    const n = await startNginx({
      upstreams,
      method: c.strategy === 'least_conn' ? 'least_conn' : 'round-robin',
      name: c.id,
    })
    return { stop: () => n.stop(), port: n.port, skip: null }
  }
  if (c.kind === 'haproxy') {
    const h = await startHaproxy({ upstreams, balance: 'leastconn', name: c.id })
    return { stop: () => h.stop(), port: h.port, skip: null }
  }
  const p = await startProcess({
    name: c.id,
    cmd: process.execPath,
    args: [
      ...profileArgs(`balance-${c.id}`),
      gatewayScript,
      'tollgate-fastify',
      urls.join(','),
      c.strategy,
      'x-session-id',
    ],
    core: SERVER_CORE,
    readyLine: jsonLine,
    readyTimeoutMs: 30_000,
    pinAfterReady: true,
  })
  return { stop: () => p.stop(), port: p.ready.port, skip: p.ready.skip ?? null }
}

/**
 * The client runs in this process, which run.js has moved to the load core, rather than in a child:
 * a Node start per phase would cost more than the phase in a quick run.
 * @param {import('./lib/open-loop-client.js').ClientOptions} options
 * @param {(event: string) => void} onEvent
 */
function runClient(options, onEvent) {
  return runOpenLoop(options, onEvent)
}

/** @param {Awaited<ReturnType<typeof runClient>>} run */
function summarizePhase(run) {
  const ok = run.outcomes.filter((o) => o.error === null)
  /** @type {Record<string, number>} */
  const errorKinds = {}
  /** @type {Record<string, number>} */
  const counts = {}
  for (const o of run.outcomes) {
    if (o.error) errorKinds[o.error] = (errorKinds[o.error] ?? 0) + 1
    if (o.backend) counts[o.backend] = (counts[o.backend] ?? 0) + 1
  }
  const routed = Object.values(counts).reduce((a, b) => a + b, 0)
  return {
    requests: run.arrivals,
    ok: ok.length,
    errors: run.arrivals - ok.length,
    errorKinds,
    ttft: summarize(ok.map((o) => o.ttftMs)),
    e2e: summarize(ok.map((o) => o.e2eMs)),
    // Completions over the time from the first arrival to the last completion: what was served,
    // including the drain of whatever queued up.
    throughput: ok.length / (run.elapsedMs / 1000),
    offered: run.arrivals / (run.durationMs / 1000),
    shares: Object.fromEntries(Object.entries(counts).map(([k, v]) => [k, v / routed])),
    maxLagMs: run.maxLagMs,
  }
}

/**
 * @param {Record<string, Record<string, any>>} results
 * @param {Phase[]} phases
 */
function losses(results, phases) {
  /** @type {string[]} */
  const out = []
  for (const phase of phases) {
    const leastConn = results['nginx:least_conn']?.[phase.id]
    if (!leastConn) continue
    const best = bestLoadAware(results, phase.id)
    // Below 20% the difference is within what one short phase's p99 varies by (see the report).
    if (best && best.p99 > leastConn.ttft.p99 * 1.2) {
      out.push(
        `${phase.title}: the best tollgate load-aware strategy (${best.strategy}) has a TTFT p99 of ` +
          `${num(best.p99)} ms against nginx least_conn's ${num(leastConn.ttft.p99)} ms`,
      )
    }
  }
  return out
}

/** @param {Record<string, Record<string, any>>} results @param {string} phaseId */
function bestLoadAware(results, phaseId) {
  /** @type {{ strategy: string, p99: number } | null} */
  let best = null
  for (const s of LOAD_AWARE) {
    const r = results[`tollgate:${s}`]?.[phaseId]
    if (r && r.errors === 0 && (!best || r.ttft.p99 < best.p99)) best = { strategy: s, p99: r.ttft.p99 }
  }
  return best
}

/**
 * @param {{
 *   phases: Phase[], results: Record<string, Record<string, any>>, skipped: string[],
 *   capacity: number, meanTokens: number, phaseMs: number,
 *   shapes: Array<{ capacity: number, ttftMs: number, tptMs: number, batchSlowdown: number }>,
 * }} o
 */
function report({ phases, results, skipped, capacity, meanTokens, phaseMs, shapes }) {
  const perServer = BACKENDS.map(
    (b, i) => `${b.name} ${num(serverCapacity(/** @type {any} */ (shapes[i]), meanTokens))}`,
  )
  const t = MODEL.tokens
  const intro = [
    `Backends: three \`examples/fake-model-server.js\` processes with capacities ${BACKENDS.map((b) => b.capacity).join(', ')} ` +
      `(answers generated at once; more wait in an unbounded FIFO queue), time to first token ${MODEL.ttftMs} ms, ` +
      `${MODEL.tptMs} ms per token × (1 + ${MODEL.batchSlowdown} × (batch − 1)), answer lengths ` +
      `min(⌊Pareto(${t.min}, α=${t.alpha})⌋, ${t.max}) tokens (mean ${num(meanTokens)}), drawn by the client from ` +
      'the phase seed and sent as `max_tokens`, so every balancer gets the same work in the same order. ' +
      'No weights and no `maxConcurrency` are configured anywhere: every balancer gets the same information.',
    '',
    'Capacity of a saturated server = capacity / (ttft + (mean tokens − 1) × per-token time at a full batch): ' +
      `${perServer.join(', ')} req/s, pool **${num(capacity)} req/s**. Loads are fractions of the pool.`,
    '',
    `Open loop: Poisson arrivals for ${phaseMs / 1000} s per phase from one seeded schedule per phase (the same ` +
      'arrival times for every balancer), streaming requests (`"stream": true`), each timed from its scheduled ' +
      'start: TTFT = first body bytes at the client, e2e = end of stream. Every request that was sent is ' +
      'waited for (up to a timeout): "served" is answers completed per second from the phase start until the ' +
      'last answer, so it includes draining the queues a phase built up; "sent" is arrivals per second. Shares are ' +
      'of answered requests, by the `x-backend` header. Percentiles are nearest-rank over one phase: with a ' +
      'few hundred requests, p99 is among the few slowest, so read differences under ~20% as noise.',
  ].join('\n')

  const sections = phases.map((phase) => {
    const rows = CONFIGS.filter((c) => results[c.id]?.[phase.id]).map((c) => {
      const r = results[c.id]?.[phase.id]
      const errors = r.errors
        ? `${r.errors} (${Object.entries(r.errorKinds)
            .map(([k, v]) => `${k} ${v}`)
            .join(', ')})`
        : '0'
      return [
        c.label,
        num(r.ttft.p50),
        num(r.ttft.p99),
        num(r.e2e.p50),
        num(r.e2e.p99),
        `${num(r.throughput)} / ${num(r.offered)}`,
        errors,
        BACKENDS.map((b) => pct(r.shares[b.name] ?? 0)).join(' / '),
      ]
    })
    let summary = ''
    const best = bestLoadAware(results, phase.id)
    const rr = results['tollgate:round-robin']?.[phase.id]
    const lc = results['nginx:least_conn']?.[phase.id]
    if (best) {
      summary =
        `\n\nBest tollgate load-aware strategy by TTFT p99: **${best.strategy}**, ${num(best.p99)} ms` +
        (rr ? `; ${times(ratio(best.p99, rr.ttft.p99))} tollgate round-robin's` : '') +
        (lc ? `, ${times(ratio(best.p99, lc.ttft.p99))} nginx least_conn's` : '') +
        '.'
    }
    return (
      `### ${phase.title} (${num(capacity * phase.load)} req/s on average)\n\n` +
      table(
        [
          'balancer',
          'TTFT p50 ms',
          'TTFT p99 ms',
          'e2e p50 ms',
          'e2e p99 ms',
          'served / sent req/s',
          'errors',
          `share ${BACKENDS.map((b) => b.name).join(' / ')}`,
        ],
        rows,
      ) +
      summary
    )
  })
  const skippedText = skipped.length
    ? `\n\n**Not measured in this run**\n\n${skipped.map((s) => `- ${s}`).join('\n')}`
    : ''
  return `${intro}${skippedText}\n\n${sections.join('\n\n')}`
}
