/**
 * Fair shares of full backends, measured (the `fairness` option).
 *
 *   npm run build && node bench/fairness.js            about 3 minutes, prints the section
 *   node bench/fairness.js --write                     also puts it into bench/RESULTS.md
 *   node bench/fairness.js --quick                     short runs, for a smoke test
 *   node bench/fairness.js --tenants                   only scenario 4, printed (about 1 minute)
 *
 * Two fake model servers behind a Fastify gateway, `maxConcurrency: 8` each (16 slots); every answer
 * takes 100 ms to its first token and 10 tokens at 40 ms (about 0.5 s; few chunks, so the one process
 * running everything is not what saturates), so the backends serve about
 * 32 requests a second. Open-loop Poisson arrivals, seeded, timed from each request's scheduled start.
 * Gateway, backends and client share this one process: the figures compare the scenarios with one
 * another, not with another machine.
 *
 * 1. A light tenant (4/s) alone; with a heavy tenant at 10× its rate (40/s) in today's FIFO queue;
 *    the same with `fairness`. Light tenant's queue wait (scheduled send → the backend admits it)
 *    and time to first token, p50/p99.
 * 2. Two tenants each sending more than the whole capacity, weights 3:1: shares of what was served.
 * 3. Standard traffic (20/s) and sheddable traffic (20/s) with `queue.timeoutMs: 1000`, with and
 *    without `priority`: standard requests that ran out of time against sheddable ones shed.
 * 4. Ids a client makes up (`lib/tenant-ids.js`): an honest client with 6 closed-loop workers
 *    beside an attacker with 24 that keeps one API key, mints one per request, or reuses a pool.
 *
 * Scenarios 1–3 name tenants by a trusted `x-tenant-id` header, the client standing in for a proxy
 * in front that sets it.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import tollgate from '@tollgate/fastify'
import Fastify from 'fastify'
import { Agent, request } from 'undici'
import { startFakeModelServer } from '../examples/fake-model-server.js'
import { num, pct, table, times } from './lib/markdown.js'
import { poissonSchedule } from './lib/poisson.js'
import { percentile } from './lib/stats.js'
import { tenantIdAttacks } from './lib/tenant-ids.js'

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false },
    tenants: { type: 'boolean', default: false },
  },
})
if (values.tenants && values.write) throw new Error('--write needs the whole run; leave out --tenants')
const QUICK = values.quick ?? false
const DURATION_MS = QUICK ? 4_000 : 20_000
/** Arrivals before this are left out of the figures: the FIFO queue needs it to fill. */
const WARM_UP_MS = QUICK ? 1_000 : 5_000
const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url))
const MARK = '<!-- suite:fairness -->'

/**
 * One gateway over two fresh fake backends. `admitted` maps a request id (its body's `user`) to
 * when a backend admitted it.
 * @param {Record<string, unknown>} gatewayOptions
 */
async function startStack(gatewayOptions) {
  /** @type {Map<string, number>} */
  const admitted = new Map()
  const fakeOptions = {
    timeToFirstTokenMs: 100,
    timePerTokenMs: 40,
    answerTokens: (/** @type {unknown} */ _random, /** @type {Record<string, unknown>} */ body) => {
      admitted.set(String(body.user), performance.now())
      return 10
    },
  }
  const fakes = [await startFakeModelServer(fakeOptions), await startFakeModelServer(fakeOptions)]
  const app = Fastify()
  await app.register(tollgate, {
    backends: fakes.map((f, i) => ({ url: f.url, id: `gpu${i}`, maxConcurrency: 8 })),
    strategy: 'least-connections',
    queue: { size: 200, timeoutMs: 10_000 },
    ...gatewayOptions,
  })
  app.post('/v1/chat/completions', app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const port = typeof address === 'object' && address ? address.port : 0
  return {
    url: `http://127.0.0.1:${port}/v1/chat/completions`,
    admitted,
    close: async () => {
      await app.close()
      await Promise.all(fakes.map((f) => f.close()))
    },
  }
}

/**
 * @typedef {{ tenant: string, ratePerSecond: number, seed: number, priority?: string }} Flow
 * @typedef {{ tenant: string, priority: string | undefined, at: number, status: number,
 *   code: string | null, ttftMs: number, waitMs: number }} Outcome
 */

/** Sends every flow's Poisson arrivals to `stack` and waits for every answer. */
async function drive(
  /** @type {Awaited<ReturnType<typeof startStack>>} */ stack,
  /** @type {Flow[]} */ flows,
) {
  const dispatcher = new Agent({ keepAliveTimeout: 30_000, connect: { timeout: 5_000 } })
  const schedule = flows
    .flatMap((flow) =>
      poissonSchedule({ ratePerSecond: flow.ratePerSecond, durationMs: DURATION_MS, seed: flow.seed }).map(
        (at) => ({ at, flow }),
      ),
    )
    .sort((a, b) => a.at - b.at)
  const start = performance.now()
  /** @type {Promise<Outcome>[]} */
  const pending = []
  let n = 0
  const one = async (/** @type {number} */ at, /** @type {Flow} */ flow) => {
    const id = `${flow.tenant}-${n++}`
    const t0 = start + at
    /** @type {Outcome} */
    const outcome = {
      tenant: flow.tenant,
      priority: flow.priority,
      at,
      status: 0,
      code: null,
      ttftMs: NaN,
      waitMs: NaN,
      admittedAt: NaN,
    }
    try {
      const res = await request(stack.url, {
        method: 'POST',
        dispatcher,
        headers: {
          'content-type': 'application/json',
          'x-tenant-id': flow.tenant,
          ...(flow.priority ? { 'x-priority': flow.priority } : {}),
        },
        body: JSON.stringify({
          model: 'fake-model',
          stream: true,
          user: id,
          messages: [{ role: 'user', content: 'hi' }],
        }),
      })
      outcome.status = res.statusCode
      let first = true
      let text = ''
      for await (const chunk of res.body) {
        if (first) {
          outcome.ttftMs = performance.now() - t0
          first = false
        }
        if (res.statusCode !== 200) text += chunk.toString('utf8')
      }
      if (res.statusCode !== 200) outcome.code = JSON.parse(text)?.error?.code ?? null
    } catch (error) {
      outcome.code = /** @type {Error} */ (error).name
    }
    const admittedAt = stack.admitted.get(id)
    if (admittedAt !== undefined) {
      outcome.waitMs = admittedAt - t0
      outcome.admittedAt = admittedAt - start
    }
    return outcome
  }
  await new Promise((resolve) => {
    let next = 0
    const tick = () => {
      const now = performance.now() - start
      while (next < schedule.length && /** @type {{ at: number }} */ (schedule[next]).at <= now) {
        const item = /** @type {{ at: number, flow: Flow }} */ (schedule[next++])
        pending.push(one(item.at, item.flow))
      }
      if (next >= schedule.length) return resolve(undefined)
      setTimeout(
        tick,
        Math.max(0, /** @type {{ at: number }} */ (schedule[next]).at - (performance.now() - start)),
      )
    }
    tick()
  })
  const outcomes = await Promise.all(pending)
  await dispatcher.close()
  return outcomes
}

/** @param {Record<string, unknown>} options @param {Flow[]} flows */
async function scenario(options, flows) {
  const stack = await startStack(options)
  try {
    return await drive(stack, flows)
  } finally {
    await stack.close()
  }
}

const LIGHT = { tenant: 'light', ratePerSecond: 4, seed: 11 }
const HEAVY = { tenant: 'heavy', ratePerSecond: 40, seed: 12 }
const TRUSTED = { tenant: 'x-tenant-id', trustTenantHeader: true }
const FAIR = { fairness: TRUSTED }

/** @param {Outcome[]} outcomes */
function lightFigures(outcomes) {
  const light = outcomes.filter((o) => o.tenant === 'light' && o.at >= WARM_UP_MS)
  const ok = light.filter((o) => o.status === 200)
  const wait = ok.map((o) => o.waitMs)
  const ttft = ok.map((o) => o.ttftMs)
  return {
    sent: light.length,
    failed: light.length - ok.length,
    waitP50: percentile(wait, 50),
    waitP99: percentile(wait, 99),
    ttftP50: percentile(ttft, 50),
    ttftP99: percentile(ttft, 99),
  }
}

/** Scenario 4's table. @param {Awaited<ReturnType<typeof tenantIdAttacks>>} run */
function tenantIdSection(run) {
  return [
    `### Ids a client makes up: ${run.honestWorkers} honest workers, ${run.attackerWorkers} attacking`,
    '',
    'One fake backend with 2 slots, each answer about 60 ms (20 ms to the first token, 4 tokens at 10 ms); ' +
      '`keyGenerator: apiKeyKey`, `fairness: {}`, so the tenant is the hash of the `Authorization` key and ' +
      'a key the app does not check costs the attacker nothing. Closed-loop workers (the next request when ' +
      `the last is answered, at once after a 503) for ${run.durationMs / 1000} s; shares of the requests ` +
      `the backend admitted after the first ${run.warmUpMs / 1000} s.`,
    '',
    table(
      [
        'attacker',
        'queue size',
        'admitted',
        'honest share',
        'honest turned away',
        'honest pushed out',
        'attacker turned away',
      ],
      run.figures.map((f) => [
        f.name,
        f.queueSize,
        f.served,
        pct(f.honestShare),
        f.honestTurnedAway,
        f.honestPushedOut,
        f.attackerTurnedAway,
      ]),
    ),
    '',
  ].join('\n')
}

async function main() {
  const log = (/** @type {string} */ line) => console.error(line)
  if (values.tenants) {
    log('fairness: ids a client makes up')
    console.log(tenantIdSection(await tenantIdAttacks({ quick: QUICK })))
    return
  }
  log('fairness: light tenant alone')
  const solo = lightFigures(await scenario(FAIR, [LIGHT]))
  log('fairness: light + heavy, FIFO')
  const fifo = lightFigures(await scenario({}, [LIGHT, HEAVY]))
  log('fairness: light + heavy, fair')
  const fair = lightFigures(await scenario(FAIR, [LIGHT, HEAVY]))

  log('fairness: weights 3:1')
  const weighted = await scenario({ fairness: { ...TRUSTED, weights: { gold: 3, free: 1 } } }, [
    { tenant: 'gold', ratePerSecond: 40, seed: 21 },
    { tenant: 'free', ratePerSecond: 40, seed: 22 },
  ])
  // Counted by when the backend took them, over the saturated part of the run.
  const servedAfterWarmUp = weighted.filter((o) => o.admittedAt >= WARM_UP_MS && o.admittedAt <= DURATION_MS)
  const gold = servedAfterWarmUp.filter((o) => o.tenant === 'gold').length
  const free = servedAfterWarmUp.length - gold

  log('fairness: sheddable and standard, with and without priorities')
  const mixed = (/** @type {boolean} */ prioritised) => [
    { tenant: 'app', ratePerSecond: 20, seed: 31, priority: prioritised ? 'standard' : undefined },
    { tenant: 'batch', ratePerSecond: 20, seed: 32, priority: prioritised ? 'sheddable' : undefined },
  ]
  const priority = (/** @type {{ headers: Record<string, string | undefined> }} */ req) =>
    req.headers['x-priority'] === 'sheddable' ? 'sheddable' : 'standard'
  const shedRuns = []
  for (const prioritised of [false, true]) {
    const outcomes = await scenario(
      { queue: { size: 200, timeoutMs: 1_000 }, fairness: prioritised ? { ...TRUSTED, priority } : TRUSTED },
      mixed(prioritised),
    )
    const of = (/** @type {string} */ tenant) => outcomes.filter((o) => o.tenant === tenant)
    const missed = (/** @type {Outcome[]} */ list) => list.filter((o) => o.code === 'queue_timeout')
    const app = of('app')
    const batch = of('batch')
    const firstAt = (/** @type {Outcome[]} */ list) =>
      list.length === 0 ? NaN : Math.min(...list.map((o) => o.at))
    shedRuns.push({
      prioritised,
      appSent: app.length,
      appMissed: missed(app).length,
      appWaitP99: percentile(
        app.filter((o) => o.status === 200).map((o) => o.waitMs),
        99,
      ),
      batchSent: batch.length,
      batchShed: batch.filter((o) => o.code === 'shed').length,
      batchMissed: missed(batch).length,
      firstShedAt: firstAt(batch.filter((o) => o.code === 'shed')),
      firstAppMissAt: firstAt(missed(app)),
    })
  }

  log('fairness: ids a client makes up')
  const tenantIds = await tenantIdAttacks({ quick: QUICK })

  const ms = (/** @type {number} */ v) => num(v, 3)
  const lightRow = (/** @type {string} */ name, /** @type {ReturnType<typeof lightFigures>} */ f) => [
    name,
    f.sent,
    f.failed,
    ms(f.waitP50),
    ms(f.waitP99),
    ms(f.ttftP50),
    ms(f.ttftP99),
    times(f.ttftP99 / solo.ttftP99),
  ]
  const section = [
    MARK,
    '## Fair shares of full backends',
    '',
    `_${QUICK ? 'Quick' : 'Full'} run, ${new Date().toISOString()}, \`node bench/fairness.js\`._`,
    '',
    'Two fake backends, `maxConcurrency: 8` each (16 slots), every answer 100 ms to the first token and 10 tokens at 40 ms, so about 32 answers a second; Fastify gateway, `least-connections`, `queue: { size: 200 }`. Open-loop Poisson arrivals for ' +
      `${DURATION_MS / 1000} s, figures over arrivals after the first ${WARM_UP_MS / 1000} s. ` +
      'Queue wait is from the scheduled send to the backend admitting the request; TTFT from the scheduled send to the first streamed byte. Gateway, backends and client run in one process.',
    '',
    '### A light tenant (4/s) next to a heavy one (40/s, 10×)',
    '',
    table(
      [
        'light tenant',
        'sent',
        'failed',
        'wait p50 ms',
        'wait p99 ms',
        'TTFT p50 ms',
        'TTFT p99 ms',
        'TTFT p99 vs alone',
      ],
      [
        lightRow('alone', solo),
        lightRow('with heavy, FIFO queue', fifo),
        lightRow('with heavy, `fairness`', fair),
      ],
    ),
    '',
    '### Weights 3:1, both tenants above capacity (40/s each), served counted while saturated',
    '',
    table(
      ['tenant', 'weight', 'served', 'share', 'target'],
      [
        ['gold', 3, gold, pct(gold / (gold + free)), '75%'],
        ['free', 1, free, pct(free / (gold + free)), '25%'],
      ],
    ),
    '',
    '### Sheddable traffic under sustained saturation (20/s standard + 20/s batch, `queue.timeoutMs: 1000`)',
    '',
    table(
      [
        'priorities',
        'standard sent',
        'standard past deadline',
        'standard wait p99 ms',
        'batch sent',
        'batch shed',
        'batch past deadline',
        'first shed at s',
        'first standard miss at s',
      ],
      shedRuns.map((r) => [
        r.prioritised ? '`priority`: batch sheddable' : 'none (both standard)',
        r.appSent,
        r.appMissed,
        ms(r.appWaitP99),
        r.batchSent,
        r.batchShed,
        r.batchMissed,
        Number.isFinite(r.firstShedAt) ? num(r.firstShedAt / 1000) : '–',
        Number.isFinite(r.firstAppMissAt) ? num(r.firstAppMissAt / 1000) : '–',
      ]),
    ),
    '',
    tenantIdSection(tenantIds),
  ].join('\n')
  console.log(section)
  if (values.write) {
    const current = readFileSync(RESULTS, 'utf8')
    const at = current.indexOf(MARK)
    const after = at === -1 ? -1 : current.indexOf('<!-- suite:', at + MARK.length)
    const rest = after === -1 ? '' : `\n${current.slice(after)}`
    const next = at === -1 ? `${current.trimEnd()}\n\n${section}` : `${current.slice(0, at)}${section}${rest}`
    writeFileSync(RESULTS, next)
  }
}

await main()
