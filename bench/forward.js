/**
 * Forwarding overhead: the same origin reached directly and through each gateway, for a small JSON
 * answer and for a streamed (SSE) answer, with nginx as the reference for what a proxy can cost.
 */
import { fileURLToPath } from 'node:url'
import { num, table, times } from './lib/markdown.js'
import { jsonLine, LOAD_CORE, profileArgs, SERVER_CORE, startProcess } from './lib/processes.js'
import { startNginx } from './lib/proxy-configs.js'
import { compare, medians, runRounds } from './lib/rounds.js'

const originScript = fileURLToPath(new URL('./servers/origin.js', import.meta.url))
const gatewayScript = fileURLToPath(new URL('./servers/forward-server.js', import.meta.url))
const postScript = fileURLToPath(new URL('./wrk/post.lua', import.meta.url))

const GATEWAYS = [
  { id: 'tollgate-fastify', label: 'tollgate forward (Fastify)' },
  // Served as app.listen() does, like the Express peer it is compared with.
  { id: 'tollgate-express-listen', label: 'tollgate forward (Express)' },
  { id: 'reply-from', label: '@fastify/reply-from' },
  { id: 'http-proxy', label: '@fastify/http-proxy' },
  { id: 'http-proxy-middleware', label: 'http-proxy-middleware (Express, keep-alive agent)' },
]
const COMPARISONS = [
  { a: 'tollgate-fastify', b: 'reply-from' },
  { a: 'tollgate-fastify', b: 'http-proxy' },
  { a: 'tollgate-fastify', b: 'nginx' },
  { a: 'tollgate-express-listen', b: 'http-proxy-middleware' },
  { a: 'tollgate-express-listen', b: 'nginx' },
]
const SSE_CHUNKS = 16
const SSE_INTERVAL_MS = 2
const WORKLOADS = [
  {
    id: 'json',
    title: 'Small JSON answer',
    body: JSON.stringify({ model: 'fake-model', messages: [{ role: 'user', content: 'Say something.' }] }),
  },
  {
    id: 'sse',
    title: `Streamed answer (SSE, ${SSE_CHUNKS} events ${SSE_INTERVAL_MS} ms apart)`,
    body: JSON.stringify({
      model: 'fake-model',
      stream: true,
      messages: [{ role: 'user', content: 'Say something.' }],
    }),
  },
]

/**
 * @param {{ quick: boolean, log: (line: string) => void }} options
 */
export async function runForwardBench({ quick, log }) {
  const settings = quick
    ? { rounds: 1, seconds: 1, warmupSeconds: 1, warmTogether: true, connections: 50 }
    : { rounds: 4, seconds: 2, warmupSeconds: 2, warmTogether: false, connections: 50 }
  /** @type {Array<{ stop: () => Promise<void> }>} */
  const started = []
  /** @type {string[]} */
  const skipped = []
  /** @type {string[]} */
  const losses = []
  /** @type {Record<string, unknown>} */
  const raw = {}
  /** @type {string[]} */
  const sections = []
  try {
    const origin = await startProcess({
      name: 'origin',
      cmd: process.execPath,
      args: [originScript, '--chunks', String(SSE_CHUNKS), '--interval', String(SSE_INTERVAL_MS)],
      core: LOAD_CORE,
      readyLine: jsonLine,
    })
    started.push(origin)
    const originUrl = `http://127.0.0.1:${origin.ready.port}`
    log(`forward: origin at ${originUrl}; starting gateways`)

    const gateways = await Promise.all(
      GATEWAYS.map((g) =>
        startProcess({
          name: g.id,
          cmd: process.execPath,
          args: [...profileArgs(`forward-${g.id}`), gatewayScript, g.id, originUrl],
          core: SERVER_CORE,
          readyLine: jsonLine,
          readyTimeoutMs: 30_000,
          pinAfterReady: true,
        }),
      ),
    )
    started.push(...gateways)
    /** @type {Awaited<ReturnType<typeof startNginx>> | null} */
    let nginx = null
    try {
      nginx = await startNginx({ upstreams: [`127.0.0.1:${origin.ready.port}`] })
      started.push(nginx)
    } catch (err) {
      skipped.push(`nginx: could not start (${err instanceof Error ? err.message.split('\n')[0] : err})`)
    }

    /** @type {Array<{ id: string, label: string, pgid: number, port: number }>} */
    const targets = [
      { id: 'direct', label: 'direct to the origin', pgid: origin.pid, port: origin.ready.port },
    ]
    gateways.forEach((proc, i) => {
      const g = /** @type {(typeof GATEWAYS)[number]} */ (GATEWAYS[i])
      if (proc.ready.skip) {
        skipped.push(`${g.label}: ${proc.ready.skip}`)
        log(`forward: skipping ${g.id}: ${proc.ready.skip}`)
      } else {
        targets.push({ id: g.id, label: g.label, pgid: proc.pid, port: proc.ready.port })
      }
    })
    if (nginx)
      targets.push({
        id: 'nginx',
        label: 'nginx (1 worker, keep-alive upstream)',
        pgid: nginx.proc.pid,
        port: nginx.port,
      })
    const labelOf = (/** @type {string} */ id) => targets.find((t) => t.id === id)?.label ?? id

    for (const [w, workload] of WORKLOADS.entries()) {
      log(`forward: ${workload.title}`)
      const results = await runRounds({
        targets: targets.map((t) => ({
          id: t.id,
          pgid: t.pgid,
          url: `http://127.0.0.1:${t.port}/v1/chat/completions`,
          script: postScript,
          env: { WRK_BODY: workload.body },
        })),
        ...settings,
        // The first workload has warmed the shared code paths; the next one needs only a short run.
        warmupSeconds: w === 0 ? settings.warmupSeconds : Math.min(1, settings.warmupSeconds),
        log,
      })
      raw[workload.id] = Object.fromEntries(results)
      const nginxRounds = results.get('nginx')
      const vsNginx = (/** @type {string} */ id) => {
        if (id === 'direct' || !nginxRounds) return '–'
        return times(compare(results.get(id) ?? [], nginxRounds).cpuRatio)
      }
      const rows = targets.map((t) => {
        const m = medians(results.get(t.id) ?? [])
        return [
          t.label,
          num(m.requestsPerSecond),
          num(m.cpuMicrosPerRequest) + (t.id === 'direct' ? ' (origin)' : ''),
          num(m.p50Ms),
          num(m.p99Ms),
          vsNginx(t.id),
          String(m.failures),
        ]
      })
      const comparisonRows = COMPARISONS.filter((c) => results.has(c.a) && results.has(c.b)).map((c) => {
        const cmp = compare(results.get(c.a) ?? [], results.get(c.b) ?? [])
        if (cmp.cpuRatio > 1.05 && c.b !== 'nginx') {
          losses.push(
            `${workload.title}: ${labelOf(c.a)} uses ${times(cmp.cpuRatio)} the CPU per request of ${labelOf(c.b)}`,
          )
        }
        return [labelOf(c.a), labelOf(c.b), times(cmp.cpuRatio), times(cmp.throughputRatio)]
      })
      sections.push(
        `### ${workload.title}\n\n` +
          table(['path', 'req/s', 'proxy CPU µs/req', 'p50 ms', 'p99 ms', 'CPU vs nginx', 'failed'], rows) +
          (comparisonRows.length
            ? `\n\n${table(['tollgate', 'compared with', 'CPU/req ratio', 'req/s ratio'], comparisonRows, ['l', 'l', 'r', 'r'])}`
            : ''),
      )
    }
  } finally {
    await Promise.all(started.map((p) => p.stop()))
  }

  const intro =
    `Closed loop: wrk, 1 thread, ${settings.connections} connections, POST /v1/chat/completions with a small ` +
    `JSON body, ${settings.rounds} round(s) of ${settings.seconds} s per path after a ${settings.warmupSeconds} s ` +
    `warm-up ${settings.warmTogether ? 'of all at once' : 'of each'} (1 s for the second workload), paths ` +
    'alternating within each round. The origin (`bench/servers/origin.js`, a ' +
    'minimal Node server) runs on the load core; "proxy CPU" is the gateway\'s own CPU time per request ' +
    '(for "direct", the origin\'s). Throughput of the fastest proxies is bounded by the origin and wrk ' +
    'sharing one core, so compare CPU per request. nginx runs with `proxy_buffering off` so streams ' +
    'are passed on as written, like the Node proxies do.'
  const skippedText = skipped.length
    ? `\n\n**Not measured in this run**\n\n${skipped.map((s) => `- ${s}`).join('\n')}`
    : ''
  return {
    title: 'Forwarding overhead',
    markdown: `${intro}${skippedText}\n\n${sections.join('\n\n')}`,
    losses,
    raw,
  }
}
