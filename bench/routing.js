/**
 * Routing on what the model servers know, side by side: a shared-prefix multi-turn chat workload
 * (many conversations, each with its own long system prompt and a growing history; open-loop
 * Poisson arrivals; streaming) on unequal fake vLLM servers whose prefill time is proportional to
 * the prompt tokens their prefix cache does not hold, and whose KV cache holds only part of all
 * conversations. Every configuration gets fresh servers (cold caches) and the same arrivals.
 *
 *   node bench/routing.js [--quick] [--out FILE] [--only prefix-affinity,least-load] [--load-factor C]
 *   node bench/routing.js --placement   (only where prefix-affinity opens new conversations)
 *
 * Prints a markdown section (and writes it to FILE when given).
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { meanParetoTokens } from './lib/capacity.js'
import { num, pct, table } from './lib/markdown.js'
import { stopAll } from './lib/processes.js'
import { placementPhase, placementReport } from './lib/routing-placement.js'
import {
  BACKENDS,
  CHARS_PER_TOKEN,
  CONFIGS,
  conversationTexts,
  MODEL,
  PREFIX_BLIND,
  poolCapacity,
  prefixCounters,
  runPhase,
  startBackend,
  startGateway,
  summarizePhase,
  WORKLOAD,
} from './lib/routing-workload.js'

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      out: { type: 'string' },
      only: { type: 'string' },
      'load-factor': { type: 'string' },
      placement: { type: 'boolean' },
    },
  })
  if (values.placement) {
    try {
      const markdown = placementReport(await placementPhase())
      console.log(markdown)
      if (values.out) writeFileSync(values.out, markdown)
    } finally {
      await stopAll()
    }
    return
  }
  const quick = values.quick === true
  const meanTokens = meanParetoTokens(WORKLOAD.tokens.min, WORKLOAD.tokens.alpha, WORKLOAD.tokens.max)
  const capacity = poolCapacity(meanTokens)
  const loads = quick ? [0.8] : [0.5, 0.8, 0.95]
  const phaseMs = quick ? 3_000 : 8_000
  const warmMs = quick ? 1_500 : 4_000
  const timeoutMs = 60_000
  const texts = conversationTexts()
  const results = {}
  console.error(`routing: pool capacity ${capacity.toFixed(1)} req/s with cached prefixes`)
  try {
    const only = values.only?.split(',')
    for (const config of CONFIGS.filter((c) => !only || only.includes(c.id))) {
      const backends = await Promise.all(BACKENDS.map(startBackend))
      const urls = backends.map((b) => b.ready)
      const loadFactor = values['load-factor']
      const gateway = await startGateway(
        config,
        urls,
        loadFactor && config.strategy === 'prefix-affinity'
          ? { prefixAffinity: { loadFactor: Number(loadFactor) } }
          : {},
      )
      const url = `http://127.0.0.1:${gateway.port}/v1/chat/completions`
      const turnOf = new Array(WORKLOAD.conversations).fill(0)
      results[config.id] = {}
      try {
        // Not counted: every configuration starts from the same history, with its caches filled its own way.
        await runPhase({
          url,
          ratePerSecond: capacity * 0.5,
          durationMs: warmMs,
          seed: 100,
          texts,
          turnOf,
          timeoutMs,
        })
        for (const [p, load] of loads.entries()) {
          const before = await Promise.all(urls.map(prefixCounters))
          const run = await runPhase({
            url,
            ratePerSecond: capacity * load,
            durationMs: phaseMs,
            seed: p + 1,
            texts,
            turnOf,
            timeoutMs,
          })
          const after = await Promise.all(urls.map(prefixCounters))
          const s = summarizePhase(run, before, after)
          results[config.id][load] = s
          console.error(
            `  ${config.id} ${pct(load)}: ${s.requests} req, TTFT p50 ${num(s.ttft.p50)} p90 ${num(s.ttft.p90)} p99 ${num(s.ttft.p99)} ms, ` +
              `hit ${pct(s.hitRate)}, ${num(s.tokensPerSecond)} tok/s, ${s.errors} errors, ` +
              BACKENDS.map((b) => `${b.name} ${pct(s.shares[b.name])}`).join(' '),
          )
        }
      } finally {
        await gateway.stop()
        await Promise.all(backends.map((b) => b.stop()))
      }
    }
  } finally {
    await stopAll()
  }
  const markdown = report(results, loads, capacity, phaseMs, warmMs, quick)
  console.log(markdown)
  if (values.out) writeFileSync(values.out, markdown)
}

function report(results, loads, capacity, phaseMs, warmMs, quick) {
  const lines = [
    '## Routing on prefixes and reported load',
    '',
    `_${quick ? 'Quick' : 'Full'} run, ${new Date().toISOString()}; \`node bench/routing.js${quick ? ' --quick' : ''}\`._`,
    '',
    `${WORKLOAD.conversations} conversations, each with its own ${WORKLOAD.systemChars}-character system prompt ` +
      `(~${WORKLOAD.systemChars / CHARS_PER_TOKEN} tokens) and a history growing by ~${(WORKLOAD.userChars + WORKLOAD.assistantChars) / CHARS_PER_TOKEN} tokens a turn, ` +
      `up to ${WORKLOAD.maxTurns} turns; each Poisson arrival is the next turn of a conversation drawn at random, streamed, ` +
      `with an answer of Pareto(${WORKLOAD.tokens.min}, ${WORKLOAD.tokens.alpha}) tokens capped at ${WORKLOAD.tokens.max}. ` +
      `Three fake vLLM servers: ${BACKENDS.map((b) => `${b.name} (${b.capacity} at once, prefill ${b.prefillTps / 1000}k tokens/s)`).join(', ')}; ` +
      `${MODEL.ttftMs} ms to first token plus prefill of the uncached prompt, ${MODEL.tptMs} ms a token (+${MODEL.batchSlowdown * 100}% per extra answer in the batch), ` +
      `a ${MODEL.kvTokens / 1000}k-token KV cache each with an LRU prefix cache (all conversations need ~90k). ` +
      `Loads are fractions of ${num(capacity)} req/s, what the pool sustains when every prefix is cached. ` +
      `Each configuration gets fresh servers, a ${warmMs / 1000} s warm-up at 50% (not counted), then ${phaseMs / 1000} s per load, the same arrivals for all. ` +
      'Tollgate strategies weight backends by capacity; least-load and prefix-affinity scrape `/metrics` every 200 ms. ' +
      'TTFT is measured at the client from the scheduled send to the first streamed bytes; prefix hit is cached ÷ prompt tokens as the servers count them.',
    '',
  ]
  for (const load of loads) {
    lines.push(`### ${pct(load)} load`, '')
    const rows = CONFIGS.filter((c) => results[c.id]?.[load]).map((c) => {
      const s = results[c.id][load]
      return [
        c.label,
        num(s.ttft.p50),
        num(s.ttft.p90),
        num(s.ttft.p99),
        num(s.e2e.p99),
        num(s.tokensPerSecond),
        pct(s.hitRate),
        BACKENDS.map((b) => pct(s.shares[b.name])).join(' / '),
        String(s.errors),
      ]
    })
    lines.push(
      table(
        [
          'strategy',
          'TTFT p50 ms',
          'p90 ms',
          'p99 ms',
          'e2e p99 ms',
          'output tok/s',
          'prefix hit',
          `share ${BACKENDS.map((b) => b.name).join(' / ')}`,
          'errors',
        ],
        rows,
      ),
      '',
    )
    const blind = CONFIGS.filter((c) => PREFIX_BLIND.has(c.id) && results[c.id]?.[load])
    const best = blind.reduce(
      (a, c) => (results[c.id][load].ttft.p90 < results[a.id][load].ttft.p90 ? c : a),
      blind[0],
    )
    const affinity = results['prefix-affinity']?.[load]
    if (best && affinity) {
      const r = affinity.ttft.p90 / results[best.id][load].ttft.p90
      lines.push(
        `prefix-affinity TTFT p90 is ×${num(r)} that of the best prefix-blind strategy (${best.label}); goal: at most ×0.5.`,
        '',
      )
    }
  }
  return lines.join('\n')
}

await main()
