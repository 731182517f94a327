/**
 * Prefix routing under cache pressure, side by side: precise (the engines' KV events) vs
 * approximate (where prompts were sent) vs least-load. More distinct shared prefixes (documents
 * many requests ask about) than the fake vLLM servers' KV caches hold, so they evict; two gateway
 * replicas in front of the same servers, as a deployment runs them, the client choosing one at
 * random per request. Open-loop Poisson arrivals, streamed answers, TTFT at the client.
 *
 *   node bench/kv-events.js [--quick] [--out FILE] [--rate R]
 *
 * Prints a markdown section (and writes it to FILE when given).
 */
import { writeFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { requestDeadline } from './lib/deadline.js'
import { num, pct, table } from './lib/markdown.js'
import { poissonSchedule, seededRandom } from './lib/poisson.js'
import { freePort, jsonLine, LOAD_CORE, SERVER_CORE, startProcess, stopAll } from './lib/processes.js'
import { prefixCounters } from './lib/routing-workload.js'
import { summarize } from './lib/stats.js'

const root = fileURLToPath(new URL('../', import.meta.url))
const ENGINE = { capacity: 8, ttftMs: 30, tptMs: 8, prefillTps: 4_000, kvTokens: 16_000, answerTokens: 16 }
const ENGINES = ['e1', 'e2', 'e3']
/** 36 documents of ~1,600 tokens: ~58k tokens of distinct prefixes against 3 × 16k tokens of KV cache. */
const WORK = { documents: 36, documentChars: 6_400, questionChars: 240, zipf: 0.8 }
const CONFIGS = [
  { id: 'precise', label: 'precise-prefix (KV events)', strategy: 'precise-prefix', kvEvents: true },
  { id: 'approximate', label: 'prefix-affinity (sent-to index)', strategy: 'prefix-affinity' },
  { id: 'least-load', label: 'least-load', strategy: 'least-load' },
]
const REPLICAS = 2

const WORDS = 'model token cache prefix batch queue server prompt answer system rule tool user turn'.split(
  ' ',
)
function filler(random, chars) {
  let text = ''
  while (text.length < chars) text += `${WORDS[Math.floor(random() * WORDS.length)]} `
  return text.slice(0, chars)
}

async function startEngine(name) {
  const kvPort = await freePort()
  const p = await startProcess({
    name: `engine ${name}`,
    cmd: process.execPath,
    args: [
      `${root}examples/fake-model-server.js`,
      ...['--name', name, '--capacity', String(ENGINE.capacity), '--ttft', String(ENGINE.ttftMs)],
      ...['--tpt', String(ENGINE.tptMs), '--prefill-tps', String(ENGINE.prefillTps)],
      ...['--kv-tokens', String(ENGINE.kvTokens), '--tokens', String(ENGINE.answerTokens)],
      ...['--kv-events-port', String(kvPort)],
    ],
    core: LOAD_CORE,
    readyLine: (line) => (line.startsWith('http://') ? line.trim() : undefined),
  })
  return { url: p.ready, kvEvents: `tcp://127.0.0.1:${kvPort}`, stop: () => p.stop() }
}

async function startGateway(config, engines, loadFactor) {
  const options = {
    backends: engines.map((e, i) => ({
      id: ENGINES[i],
      url: e.url,
      metrics: 'vllm',
      ...(config.kvEvents ? { kvEvents: e.kvEvents } : {}),
    })),
    strategy: config.strategy,
    loadReports: { intervalMs: 200 },
    ...(loadFactor === undefined
      ? {}
      : { prefixAffinity: { loadFactor }, ...(config.kvEvents ? { precisePrefix: { loadFactor } } : {}) }),
  }
  const p = await startProcess({
    name: config.id,
    cmd: process.execPath,
    args: [`${root}bench/routing-gateway.js`, JSON.stringify(options)],
    core: SERVER_CORE,
    readyLine: jsonLine,
    readyTimeoutMs: 30_000,
  })
  return { port: p.ready.port, stop: () => p.stop() }
}

/** Document d is asked about with probability ∝ 1 / (d + 1)^zipf: a few popular, a long tail. */
function documentSampler(random) {
  const weights = Array.from({ length: WORK.documents }, (_, d) => 1 / (d + 1) ** WORK.zipf)
  const total = weights.reduce((a, b) => a + b, 0)
  const cumulative = []
  let sum = 0
  for (const w of weights) {
    sum += w / total
    cumulative.push(sum)
  }
  return () => {
    const u = random()
    const d = cumulative.findIndex((c) => u < c)
    return d === -1 ? WORK.documents - 1 : d
  }
}

async function runPhase({ ports, rate, durationMs, seed, documents }) {
  const arrivals = poissonSchedule({ ratePerSecond: rate, durationMs, seed })
  const random = seededRandom(seed ^ 0x5bd1e995)
  const drawDocument = documentSampler(random)
  const dispatcher = new Agent({ keepAliveTimeout: 30_000 })
  const start = performance.now()
  const pending = []
  async function one(at, body, port) {
    const outcome = { ttftMs: Number.NaN, error: null }
    const deadline = requestDeadline(60_000)
    try {
      const res = await request(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: 'POST',
        dispatcher,
        body,
        headers: { 'content-type': 'application/json' },
        signal: deadline.signal,
      })
      let first = true
      for await (const _ of res.body) {
        if (first) outcome.ttftMs = performance.now() - (start + at)
        first = false
      }
      if (res.statusCode !== 200) outcome.error = `http-${res.statusCode}`
    } catch (err) {
      outcome.error = err?.code ?? err?.name ?? 'error'
    } finally {
      deadline.clear()
    }
    return outcome
  }
  let next = 0
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now() - start
      while (next < arrivals.length && arrivals[next] <= now) {
        const at = arrivals[next++]
        const d = drawDocument()
        const question = `Question ${next}: ${filler(random, WORK.questionChars)}`
        const body = JSON.stringify({
          model: 'fake-model',
          stream: true,
          max_tokens: ENGINE.answerTokens,
          messages: [
            { role: 'system', content: documents[d] },
            { role: 'user', content: question },
          ],
        })
        pending.push(one(at, body, ports[Math.floor(random() * ports.length)]))
      }
      if (next >= arrivals.length) return resolve(undefined)
      setTimeout(tick, Math.max(0, arrivals[next] - (performance.now() - start)))
    }
    tick()
  })
  const outcomes = await Promise.all(pending)
  await dispatcher.close().catch(() => {})
  const ok = outcomes.filter((o) => o.error === null)
  return {
    requests: outcomes.length,
    errors: outcomes.length - ok.length,
    ttft: summarize(ok.map((o) => o.ttftMs)),
  }
}

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      out: { type: 'string' },
      rate: { type: 'string' },
      only: { type: 'string' },
      'load-factor': { type: 'string' },
    },
  })
  const loadFactor = values['load-factor'] === undefined ? undefined : Number(values['load-factor'])
  const only = values.only?.split(',')
  const quick = values.quick === true
  const rate = Number(values.rate ?? 12)
  const warmMs = quick ? 12_000 : 20_000
  const phaseMs = quick ? 10_000 : 20_000
  const random = seededRandom(11)
  const documents = Array.from(
    { length: WORK.documents },
    (_, d) => `Document ${d}. ${filler(random, WORK.documentChars)}`,
  )
  const results = {}
  try {
    for (const config of CONFIGS.filter((c) => !only || only.includes(c.id))) {
      const engines = await Promise.all(ENGINES.map(startEngine))
      const gateways = []
      for (let r = 0; r < REPLICAS; r++) gateways.push(await startGateway(config, engines, loadFactor))
      const ports = gateways.map((g) => g.port)
      try {
        await runPhase({ ports, rate, durationMs: warmMs, seed: 100, documents })
        const before = await Promise.all(engines.map((e) => prefixCounters(e.url)))
        const s = await runPhase({ ports, rate, durationMs: phaseMs, seed: 1, documents })
        const after = await Promise.all(engines.map((e) => prefixCounters(e.url)))
        let hits = 0
        let queries = 0
        for (const [i, a] of after.entries()) {
          hits += a.hits - before[i].hits
          queries += a.queries - before[i].queries
        }
        results[config.id] = { ...s, hitRate: queries > 0 ? hits / queries : 0 }
        if (config.kvEvents) {
          for (const g of gateways) {
            const kv = await (await request(`http://127.0.0.1:${g.port}/kv-events`)).body.json()
            console.error(
              `  gateway :${g.port} ${JSON.stringify(kv.routing)} blocks ${kv.feeds.map((f) => `${f.backend} ${f.blocks} gaps ${f.gaps} skipped ${f.skippedBlocks}`).join(', ')}`,
            )
          }
        }
        console.error(
          `  ${config.id}: ${s.requests} req, TTFT p50 ${num(s.ttft.p50)} p90 ${num(s.ttft.p90)} ms, hit ${pct(results[config.id].hitRate)}, ${s.errors} errors`,
        )
      } finally {
        await Promise.all(gateways.map((g) => g.stop()))
        await Promise.all(engines.map((e) => e.stop()))
      }
    }
  } finally {
    await stopAll()
  }
  const markdown = report(results, { quick, rate, warmMs, phaseMs, loadFactor })
  console.log(markdown)
  if (values.out) writeFileSync(values.out, markdown)
}

function report(results, { quick, rate, warmMs, phaseMs, loadFactor }) {
  const args = `${quick ? ' --quick' : ''}${loadFactor === undefined ? '' : ` --load-factor ${loadFactor}`}`
  const rows = CONFIGS.filter((c) => results[c.id]).map((c) => {
    const s = results[c.id]
    return [
      c.label,
      num(s.ttft.p50),
      num(s.ttft.p90),
      num(s.ttft.p99),
      pct(s.hitRate),
      String(s.requests),
      String(s.errors),
    ]
  })
  const lines = [
    '## Prefix routing under cache pressure: KV events vs sent-to index',
    '',
    `_${quick ? 'Quick' : 'Full'} run, ${new Date().toISOString()}; \`node bench/kv-events.js${args}\`._`,
    '',
    `${WORK.documents} documents of ~${WORK.documentChars / 4} tokens each (~${(WORK.documents * WORK.documentChars) / 4000}k tokens in all), ` +
      `each request one of them (popularity ∝ 1/rank^${WORK.zipf}) plus its own ~${WORK.questionChars / 4}-token question, ${rate} req/s Poisson, streamed. ` +
      `Three equal fake vLLM servers (${ENGINE.capacity} at once, prefill ${ENGINE.prefillTps / 1000}k tokens/s of uncached prompt through one pipeline, ` +
      `${ENGINE.ttftMs} ms to first token, ${ENGINE.kvTokens / 1000}k-token KV cache each: all three hold ~${Math.floor((3 * ENGINE.kvTokens) / (WORK.documentChars / 4))} of the documents), ` +
      `publishing KV events in vLLM's format. ${REPLICAS} gateway replicas (Fastify), the client picks one at random per request; ` +
      `every strategy scrapes \`/metrics\` every 200 ms; load factors ${loadFactor === undefined ? 'at their defaults (precise 2, prefix-affinity 0.5)' : `${loadFactor} for both`}. Fresh servers per strategy, ${warmMs / 1000} s warm-up (not counted), then ${phaseMs / 1000} s, the same arrivals for all. ` +
      'Prefix hit is cached ÷ prompt tokens as the servers count them.',
    '',
    table(['strategy', 'TTFT p50 ms', 'p90 ms', 'p99 ms', 'prefix hit', 'requests', 'errors'], rows),
    '',
  ]
  const precise = results.precise
  const approximate = results.approximate
  if (precise && approximate) {
    lines.push(
      `precise TTFT p90 is ×${num(precise.ttft.p90 / approximate.ttft.p90)} that of approximate (goal: at most ×0.5).`,
      '',
    )
  }
  return lines.join('\n')
}

await main()
