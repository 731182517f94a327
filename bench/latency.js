/**
 * What a gateway adds to latency at a fixed offered load: open-loop Poisson arrivals at 1,000 req/s
 * (the same schedule for every path in a round), timed at the client from each request's scheduled
 * start, through each gateway and directly to the same origin. "Added" is a gateway's percentile
 * minus the direct path's percentile in the same round, the way LiteLLM states its proxy's overhead.
 */
import { fileURLToPath } from 'node:url'
import { num, table } from './lib/markdown.js'
import { runOpenLoop } from './lib/open-loop-client.js'
import { jsonLine, LOAD_CORE, profileArgs, SERVER_CORE, startProcess } from './lib/processes.js'
import { startNginx } from './lib/proxy-configs.js'
import { roundOrder } from './lib/rounds.js'
import { median, percentile } from './lib/stats.js'

const originScript = fileURLToPath(new URL('./servers/origin.js', import.meta.url))
const gatewayScript = fileURLToPath(new URL('./servers/forward-server.js', import.meta.url))

const RATE = 1_000
const SSE_CHUNKS = 16
const SSE_INTERVAL_MS = 2
const GATEWAYS = [
  { id: 'tollgate-fastify', label: 'tollgate forward (Fastify)' },
  { id: 'tollgate-express', label: 'tollgate forward (Express, `expressServer(app)`)' },
  // What app.listen() serves: Express changes each request's prototype, whose objects then all
  // reach the old generation (see expressServer); the Express peer below is served the same way.
  { id: 'tollgate-express-listen', label: 'tollgate forward (Express, `app.listen()`)' },
  { id: 'http-proxy-middleware', label: 'http-proxy-middleware (Express, `app.listen()`, keep-alive agent)' },
  { id: 'reply-from', label: '@fastify/reply-from' },
]
const WORKLOADS = [
  {
    id: 'json',
    title: 'Small JSON answer',
    stream: false,
    body: JSON.stringify({ model: 'fake-model', messages: [{ role: 'user', content: 'Say something.' }] }),
  },
  {
    id: 'sse',
    title: `Streamed answer (SSE, ${SSE_CHUNKS} events ${SSE_INTERVAL_MS} ms apart)`,
    stream: true,
    body: JSON.stringify({
      model: 'fake-model',
      stream: true,
      messages: [{ role: 'user', content: 'Say something.' }],
    }),
  },
]
/**
 * @typedef {{ p50: number, p95: number, p99: number, ttft50: number, ttft99: number,
 *   sent: number, errors: number, errorKinds: Record<string, number>, maxLagMs: number }} RoundFigures
 */

/** @param {Awaited<ReturnType<typeof runOpenLoop>>} result @returns {RoundFigures} */
function figures(result) {
  const ok = result.outcomes.filter((o) => o.error === null)
  const e2e = ok.map((o) => o.e2eMs)
  const ttft = ok.map((o) => o.ttftMs)
  /** @type {Record<string, number>} */
  const errorKinds = {}
  for (const o of result.outcomes) if (o.error !== null) errorKinds[o.error] = (errorKinds[o.error] ?? 0) + 1
  return {
    p50: percentile(e2e, 50),
    p95: percentile(e2e, 95),
    p99: percentile(e2e, 99),
    ttft50: percentile(ttft, 50),
    ttft99: percentile(ttft, 99),
    sent: result.arrivals,
    errors: result.outcomes.length - ok.length,
    errorKinds,
    maxLagMs: result.maxLagMs,
  }
}

/** Median over rounds of (a − base) for one figure. */
function addedMedian(/** @type {RoundFigures[]} */ a, /** @type {RoundFigures[]} */ base, key) {
  return median(a.map((r, i) => r[key] - /** @type {RoundFigures} */ (base[i])[key]))
}

/** Smallest and largest per-round (a − base), to show how much a figure moved between rounds. */
function addedRange(/** @type {RoundFigures[]} */ a, /** @type {RoundFigures[]} */ base, key) {
  const d = a.map((r, i) => r[key] - /** @type {RoundFigures} */ (base[i])[key])
  return `${num(Math.min(...d))} … ${num(Math.max(...d))}`
}

/**
 * @param {{ quick: boolean, log: (line: string) => void }} options
 */
export async function runLatencyBench({ quick, log }) {
  const settings = quick
    ? { rounds: 1, seconds: 1, warmupSeconds: 1 }
    : { rounds: 3, seconds: 3, warmupSeconds: 2 }
  /** @type {Array<{ stop: () => Promise<void> }>} */
  const started = []
  /** @type {string[]} */
  const skipped = []
  /** @type {Record<string, unknown>} */
  const raw = {}
  /** @type {string[]} */
  const sections = []
  /** @type {string[]} */
  const losses = []
  try {
    const origin = await startProcess({
      name: 'latency-origin',
      cmd: process.execPath,
      args: [originScript, '--chunks', String(SSE_CHUNKS), '--interval', String(SSE_INTERVAL_MS)],
      core: LOAD_CORE,
      readyLine: jsonLine,
    })
    started.push(origin)
    const originUrl = `http://127.0.0.1:${origin.ready.port}`
    const gateways = await Promise.all(
      GATEWAYS.map((g) =>
        startProcess({
          name: `latency-${g.id}`,
          cmd: process.execPath,
          args: [...profileArgs(`latency-${g.id}`), gatewayScript, g.id, originUrl],
          core: SERVER_CORE,
          readyLine: jsonLine,
          readyTimeoutMs: 30_000,
          pinAfterReady: true,
        }),
      ),
    )
    started.push(...gateways)
    // "direct" twice: the difference between two measurements of the same path in one round is
    // what this machine's noise alone makes of an "added" figure.
    /** @type {Array<{ id: string, label: string, port: number }>} */
    const targets = [
      { id: 'direct', label: 'direct to the origin', port: origin.ready.port },
      { id: 'direct-again', label: 'direct again (noise: same path twice)', port: origin.ready.port },
    ]
    gateways.forEach((proc, i) => {
      const g = /** @type {(typeof GATEWAYS)[number]} */ (GATEWAYS[i])
      if (proc.ready.skip) skipped.push(`${g.label}: ${proc.ready.skip}`)
      else targets.push({ id: g.id, label: g.label, port: proc.ready.port })
    })
    try {
      const nginx = await startNginx({ upstreams: [`127.0.0.1:${origin.ready.port}`], name: 'latency-nginx' })
      started.push(nginx)
      targets.push({ id: 'nginx', label: 'nginx (1 worker, keep-alive upstream)', port: nginx.port })
    } catch (err) {
      skipped.push(`nginx: could not start (${err instanceof Error ? err.message.split('\n')[0] : err})`)
    }
    const urlOf = (/** @type {{ port: number }} */ t) => `http://127.0.0.1:${t.port}/v1/chat/completions`

    for (const [w, workload] of WORKLOADS.entries()) {
      log(`latency: ${workload.title}, ${RATE} req/s open loop`)
      const base = { ratePerSecond: RATE, timeoutMs: 10_000, body: workload.body, stream: workload.stream }
      // Each gateway's first seconds of traffic compile its request path; keep them out of the rounds.
      for (const t of targets) {
        await runOpenLoop({ ...base, url: urlOf(t), durationMs: settings.warmupSeconds * 1000, seed: 7 + w })
      }
      /** @type {Map<string, RoundFigures[]>} */
      const results = new Map(targets.map((t) => [t.id, []]))
      for (let r = 0; r < settings.rounds; r++) {
        const seed = 1_000 * (w + 1) + r
        for (const i of roundOrder(targets.length, r)) {
          const t = /** @type {(typeof targets)[number]} */ (targets[i])
          const result = await runOpenLoop({
            ...base,
            url: urlOf(t),
            durationMs: settings.seconds * 1000,
            seed,
          })
          results.get(t.id)?.push(figures(result))
        }
        log(`latency: ${workload.id} round ${r + 1}/${settings.rounds} done`)
      }
      raw[workload.id] = Object.fromEntries(results)
      const direct = results.get('direct') ?? []
      const rows = targets.map((t) => {
        const rounds = results.get(t.id) ?? []
        const m = (/** @type {keyof RoundFigures} */ k) => median(rounds.map((x) => x[k]))
        const isDirect = t.id === 'direct'
        return [
          t.label,
          num(m('p50')),
          num(m('p99')),
          isDirect ? '–' : num(addedMedian(rounds, direct, 'p50')),
          isDirect ? '–' : num(addedMedian(rounds, direct, 'p95')),
          isDirect ? '–' : num(addedMedian(rounds, direct, 'p99')),
          isDirect ? '–' : addedRange(rounds, direct, 'p99'),
          ...(workload.stream ? [isDirect ? '–' : num(addedMedian(rounds, direct, 'ttft50'))] : []),
          String(rounds.reduce((s, x) => s + x.errors, 0)),
          num(Math.max(...rounds.map((x) => x.maxLagMs))),
        ]
      })
      const again = results.get('direct-again') ?? []
      const spread = (/** @type {keyof RoundFigures} */ k) =>
        Math.max(
          ...again.map((r, i) =>
            Math.abs(/** @type {number} */ (r[k]) - /** @type {number} */ (direct[i]?.[k])),
          ),
        )
      const kinds = targets
        .map((t) => {
          /** @type {Record<string, number>} */
          const sum = {}
          for (const r of results.get(t.id) ?? []) {
            for (const [k, n] of Object.entries(r.errorKinds)) sum[k] = (sum[k] ?? 0) + n
          }
          const text = Object.entries(sum)
            .map(([k, n]) => `${n} ${k}`)
            .join(', ')
          return text ? `${t.label}: ${text}` : ''
        })
        .filter(Boolean)
      const noise =
        `Noise in this run: the direct path measured twice in a round differed by up to ${num(spread('p50'))} ms ` +
        `at p50 and ${num(spread('p99'))} ms at p99; an added figure below that is not distinguishable from zero.` +
        (kinds.length ? ` Errors by kind: ${kinds.join('; ')}.` : '')
      for (const id of ['tollgate-fastify', 'tollgate-express']) {
        const rounds = results.get(id)
        if (!rounds) continue
        const p99 = addedMedian(rounds, direct, 'p99')
        if (p99 > 13)
          losses.push(`${workload.title}: ${id} adds ${num(p99)} ms at p99 (LiteLLM states 13 ms)`)
      }
      sections.push(
        `### ${workload.title}\n\n${table(
          [
            'path',
            'p50 ms',
            'p99 ms',
            'added p50 ms',
            'added p95 ms',
            'added p99 ms',
            'added p99, per round',
            ...(workload.stream ? ['added TTFT p50 ms'] : []),
            'errors',
            'client max lag ms',
          ],
          rows,
        )}\n\n${noise}`,
      )
    }
  } finally {
    await Promise.all(started.map((p) => p.stop()))
  }
  const intro =
    `Open loop: Poisson arrivals at ${RATE} req/s (seeded; the same schedule for every path in a round), ` +
    `${settings.rounds} round(s) of ${settings.seconds} s per path after a ${settings.warmupSeconds} s warm-up ` +
    'of each, paths alternating within each round; one undici client on the load core beside the origin ' +
    "(`bench/servers/origin.js`), each gateway alone on the server core. Latency runs from a request's " +
    'scheduled start to the end of its answer (for SSE, of the whole stream), so a late send counts too. ' +
    '"Added" is the gateway\'s percentile minus the direct path\'s in the same round, median over rounds; ' +
    'LiteLLM states 2 / 8 / 13 ms (p50 / p95 / p99) for its proxy. The "direct again" row is the noise: ' +
    'the same path measured twice in a round. "Client max lag" is how late the client sent its latest ' +
    'request (its own scheduling delay, in every path alike).'
  const skippedText = skipped.length
    ? `\n\n**Not measured in this run**\n\n${skipped.map((s) => `- ${s}`).join('\n')}`
    : ''
  return {
    title: `Latency added at ${RATE.toLocaleString('en-US')} req/s`,
    markdown: `${intro}${skippedText}\n\n${sections.join('\n\n')}`,
    losses,
    raw,
  }
}
