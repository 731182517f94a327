/**
 * What `loraAffinity` adds to one pick: the balancer alone (acquire, then finish the lease), no
 * HTTP, with four backends whose fresh vLLM reports list LoRA adapters (set by hand, no scrapes),
 * strategy least-load. Variants:
 *
 * - `off`: loraAffinity not set.
 * - `adapter`: on, the request's model is an adapter two backends run (they become the candidates).
 * - `base`: on, the model is the base model, which no report lists: the candidates stay as they are.
 * - `base-slots-full`: the same, with one candidate's adapter slots all taken: the registry is read
 *   to see whether any backend lists the model, which none does.
 * - `elsewhere`: on, the model is an adapter only a full backend runs, and one candidate has all its
 *   slots taken: the registry is read to know it is an adapter, and that candidate is left out.
 *
 *   node bench/lora-affinity-cost.js [--picks 200000] [--rounds 9]
 *
 * Every variant, rounds alternating, median ns per pick. Time, not instructions: under callgrind
 * the counts of the same variant moved by more than the difference (the JIT compiles on threads).
 *
 * Needs `npm run build` (reads packages/core/dist).
 */
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { createBalancer } from '../packages/core/dist/balance/balancer.js'

const { values } = parseArgs({
  options: {
    picks: { type: 'string', default: '200000' },
    rounds: { type: 'string', default: '9' },
  },
})
const PICKS = Number(values.picks)
const ROUNDS = Number(values.rounds)
const VARIANTS = ['off', 'adapter', 'base', 'base-slots-full', 'elsewhere']

/** A report source that is always fresh. */
function fresh(running, maxLora) {
  const set = new Set(running)
  const report = {
    waiting: 0,
    running: 1,
    kvUsage: 0.2,
    at: 0,
    lora: { running: set, waiting: new Set(), adapters: set, maxLora },
  }
  return {
    current: () => report,
    state: {
      report,
      ageMs: 0,
      stale: false,
      scrapes: 1,
      failures: 0,
      consecutiveFailures: 0,
      lastError: undefined,
    },
  }
}

function setUp(variant) {
  const backends = ['A', 'B', 'C', 'D'].map((id, i) => ({
    id,
    url: `http://127.0.0.1:${9100 + i}`,
    // D is at maxConcurrency from the start: not a candidate.
    ...(id === 'D' ? { maxConcurrency: 1 } : {}),
  }))
  const balancer = createBalancer({
    backends,
    strategy: 'least-load',
    loraAffinity: variant === 'off' ? undefined : true,
  })
  const [A, B, C, D] = balancer.registry.list()
  A.reports = fresh(['x', 'y'], 4)
  B.reports = fresh(['x'], 4)
  // C has room for one more adapter, except where a variant needs its slots full.
  C.reports = fresh(
    variant === 'base-slots-full' || variant === 'elsewhere' ? ['y', 'z', 'w', 'v'] : ['y', 'z'],
    4,
  )
  D.reports = fresh(['u'], 4)
  D.inFlight = 1
  const model = { off: 'x', adapter: 'x', base: 'base', 'base-slots-full': 'base', elsewhere: 'u' }[variant]
  return { balancer, ctx: { model } }
}

const none = new Set()
const outcome = { ok: true, latencyMs: 5 }

function run({ balancer, ctx }, picks) {
  for (let i = 0; i < picks; i++) balancer.acquire(ctx, none).finish(outcome)
}

const setups = Object.fromEntries(VARIANTS.map((v) => [v, setUp(v)]))
for (const v of VARIANTS) run(setups[v], 50_000)
const samples = Object.fromEntries(VARIANTS.map((v) => [v, []]))
for (let r = 0; r < ROUNDS; r++) {
  for (const v of VARIANTS) {
    const start = performance.now()
    run(setups[v], PICKS)
    samples[v].push(((performance.now() - start) * 1e6) / PICKS)
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
console.log(`| variant | ns per pick (median of ${ROUNDS} rounds of ${PICKS}) | added over off |`)
console.log('|---|---:|---:|')
const off = median(samples.off)
for (const v of VARIANTS) {
  const m = median(samples[v])
  console.log(`| ${v} | ${m.toFixed(0)} | ${v === 'off' ? '' : (m - off).toFixed(0)} |`)
}
for (const v of VARIANTS) await setups[v].balancer.close()
