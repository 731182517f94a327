/**
 * Two scenarios of routing on reported load, on the workload of `bench/routing.js`:
 * - replicas: a second gateway's traffic (sent straight to one server, which this gateway cannot
 *   see) saturates that server; with `metrics` the measured gateway moves away from it.
 * - zones: two servers in the gateway's zone, one in another; the local zone serves while healthy,
 *   traffic spills when the local servers crash or saturate, and comes back after.
 *
 *   node bench/routing-scenarios.js [--quick] [--out FILE] [--only replicas|zones]
 */
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { meanParetoTokens } from './lib/capacity.js'
import { num, pct, table } from './lib/markdown.js'
import { stopAll } from './lib/processes.js'
import {
  BACKENDS,
  conversationTexts,
  poolCapacity,
  prefixCounters,
  runPhase,
  startBackend,
  startGateway,
  summarizePhase,
  WORKLOAD,
} from './lib/routing-workload.js'

const TIMEOUT_MS = 60_000

async function replicas({ capacity, phaseMs }) {
  const loaded = 'medium'
  const rows = []
  for (const config of [
    { id: 'least-latency', label: 'least-latency, no metrics', kind: 'tollgate', strategy: 'least-latency' },
    {
      id: 'least-load',
      label: 'least-load, vLLM metrics',
      kind: 'tollgate',
      strategy: 'least-load',
      metrics: true,
    },
  ]) {
    const backends = await Promise.all(BACKENDS.map((b) => startBackend(b)))
    const urls = backends.map((b) => b.ready)
    const gateway = await startGateway(/** @type {any} */ (config), urls)
    try {
      const url = `http://127.0.0.1:${gateway.port}/v1/chat/completions`
      const other = `${urls[BACKENDS.findIndex((b) => b.name === loaded)]}/v1/chat/completions`
      const mine = { texts: conversationTexts(7), turnOf: new Array(WORKLOAD.conversations).fill(0) }
      const theirs = {
        texts: conversationTexts(11, 'Other replica'),
        turnOf: new Array(WORKLOAD.conversations).fill(0),
      }
      const before = await Promise.all(urls.map(prefixCounters))
      // The other replica's users alone fill the medium server's batch and queue.
      const [run] = await Promise.all([
        runPhase({
          url,
          ratePerSecond: capacity * 0.3,
          durationMs: phaseMs,
          seed: 21,
          timeoutMs: TIMEOUT_MS,
          ...mine,
        }),
        runPhase({
          url: other,
          ratePerSecond: capacity * 0.3,
          durationMs: phaseMs,
          seed: 22,
          timeoutMs: TIMEOUT_MS,
          ...theirs,
        }),
      ])
      const after = await Promise.all(urls.map(prefixCounters))
      const s = summarizePhase(run, before, after)
      rows.push([
        config.label,
        num(s.ttft.p50),
        num(s.ttft.p90),
        num(s.ttft.p99),
        pct(s.shares[loaded] ?? 0),
        String(s.errors),
      ])
      console.error(
        `  replicas ${config.id}: TTFT p90 ${num(s.ttft.p90)} ms, share on ${loaded} ${pct(s.shares[loaded] ?? 0)}`,
      )
    } finally {
      await gateway.stop()
      await Promise.all(backends.map((b) => b.stop()))
    }
  }
  return [
    '### Two gateway replicas',
    '',
    `This gateway sends 30% of the pool's capacity; another replica's users send another 30% straight to ` +
      `\`${loaded}\` (one third of the pool), which this gateway never sees. TTFT and shares are of this gateway's requests.`,
    '',
    table(['this gateway', 'TTFT p50 ms', 'p90 ms', 'p99 ms', `share on ${loaded}`, 'errors'], rows),
    '',
  ].join('\n')
}

async function zones({ capacity, phaseMs }) {
  const zoneOf = { small: 'local', medium: 'local', large: 'remote' }
  const backends = await Promise.all(BACKENDS.map((b) => startBackend(b)))
  const urls = backends.map((b) => b.ready)
  const config = { id: 'zones', label: 'zones', kind: 'tollgate', strategy: 'least-load', metrics: true }
  const gateway = await startGateway(
    /** @type {any} */ (config),
    urls,
    {
      zone: 'local',
      health: { outlier: { consecutiveFailures: 2, baseEjectionMs: 1000 } },
      loadReports: { intervalMs: 200, maxWaiting: 4 },
    },
    zoneOf,
  )
  const rows = []
  const texts = conversationTexts(7)
  const turnOf = new Array(WORKLOAD.conversations).fill(0)
  const url = `http://127.0.0.1:${gateway.port}/v1/chat/completions`
  try {
    const phases = [
      { title: 'healthy, 8% load', load: 0.08 },
      { title: 'both local servers crashed, 8% load', load: 0.08, crash: true },
      { title: 'local servers back, 8% load', load: 0.08, restart: true },
      { title: '60% load: more than the local zone holds', load: 0.6 },
    ]
    for (const [p, phase] of phases.entries()) {
      if (phase.crash)
        for (const [i, b] of BACKENDS.entries()) if (zoneOf[b.name] === 'local') await backends[i].kill()
      if (phase.restart) {
        for (const [i, b] of BACKENDS.entries()) {
          if (zoneOf[b.name] !== 'local') continue
          backends[i] = await startBackend(b, Number(new URL(urls[i]).port))
        }
        // Ejections end after baseEjectionMs; scrapes resume on their interval.
        await new Promise((resolve) => setTimeout(resolve, 1500))
      }
      const run = await runPhase({
        url,
        ratePerSecond: capacity * phase.load,
        durationMs: phaseMs,
        seed: 30 + p,
        texts,
        turnOf,
        timeoutMs: TIMEOUT_MS,
      })
      const ok = run.outcomes.filter((o) => o.error === null)
      const local = run.outcomes.filter((o) => o.backend && zoneOf[o.backend] === 'local').length
      const routed = run.outcomes.filter((o) => o.backend).length
      const ttft = ok.map((o) => o.ttftMs).sort((a, b) => a - b)
      rows.push([
        phase.title,
        String(run.arrivals),
        pct(routed ? local / routed : 0),
        pct(routed ? 1 - local / routed : 0),
        num(ttft[Math.ceil(ttft.length * 0.9) - 1] ?? Number.NaN),
        String(run.arrivals - ok.length),
      ])
      console.error(
        `  zones ${phase.title}: local ${pct(routed ? local / routed : 0)}, errors ${run.arrivals - ok.length}`,
      )
    }
  } finally {
    await gateway.stop()
    await Promise.all(backends.map((b) => b.stop()))
  }
  return [
    '### Zones',
    '',
    "`small` and `medium` in the gateway's zone, `large` in another; `least-load` with metrics within the zone, " +
      '`loadReports.maxWaiting: 4`, outlier ejection after 2 failures for 1 s. Crashed servers are killed (connections refused) and restarted on the same ports.',
    '',
    table(['phase', 'requests', 'local zone', 'other zone', 'TTFT p90 ms', 'errors'], rows),
    '',
  ].join('\n')
}

async function main() {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean' }, out: { type: 'string' }, only: { type: 'string' } },
  })
  const quick = values.quick === true
  const meanTokens = meanParetoTokens(WORKLOAD.tokens.min, WORKLOAD.tokens.alpha, WORKLOAD.tokens.max)
  const capacity = poolCapacity(meanTokens)
  const phaseMs = quick ? 2_000 : 6_000
  let markdown
  try {
    const parts = []
    if (!values.only || values.only === 'replicas') parts.push(await replicas({ capacity, phaseMs }))
    if (!values.only || values.only === 'zones') parts.push(await zones({ capacity, phaseMs }))
    markdown = parts.join('\n')
  } finally {
    await stopAll()
  }
  console.log(markdown)
  if (values.out) writeFileSync(values.out, markdown)
}

await main()
