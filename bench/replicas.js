/**
 * Gateway replicas side by side, with and without `routingState`: 1, 2 and 4 Fastify replicas in
 * processes of their own behind a client that sends each arrival to the next replica (as a
 * Kubernetes Service spreads connections), on the shared-prefix multi-turn chat workload of
 * `bench/routing.js` (prefix-affinity with vLLM metrics, three unequal fake vLLM servers with a
 * prefix cache). Also the cost of the shared state: Redis calls and Redis CPU per request, gateway
 * CPU per request, and Redis memory per 1,000 conversations. Redis is a private `redis-server`.
 *
 *   node bench/replicas.js [--quick] [--out FILE] [--replicas 1,4] [--loads 0.5,0.8] [--shared true|false]
 *                          [--runs N] [--phase-s S] [--warm-s S] [--slow K] [--memory false] [--overlap-turns]
 *                          [--capacity measured] [--load-factor F]
 *
 * `--runs` repeats every row with other arrival seeds and reports each run's ratios and their
 * median. `--slow K` makes the fake servers K times slower and the arrivals K times rarer: the same
 * utilisation and queueing, with K times less gateway, Redis and client CPU per second of server
 * time, to tell what routing decides from what the machine's cores add.
 *
 * A conversation's next turn waits for the answer to its previous one (see `runPhase`'s
 * `waitForAnswers`); `--overlap-turns` sends it regardless, as `bench/routing.js` does.
 *
 * 100% load is the perfect-cache bound of `poolCapacity`. `--capacity measured` makes it what one
 * replica sustains in front of these servers with every conversation chatting back-to-back,
 * measured first: a saturated pool's throughput, with the evictions and misses saturation brings.
 *
 * Prints a markdown section (and writes it to FILE when given).
 */
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { request } from 'undici'
import { meanParetoTokens } from './lib/capacity.js'
import { num, pct, table } from './lib/markdown.js'
import { jsonLine, startProcess, stopAll } from './lib/processes.js'
import {
  BACKENDS,
  conversationTexts,
  poolCapacity,
  prefixCounters,
  runPhase,
  startBackend,
  summarizePhase,
  sustainedThroughput,
  WORKLOAD,
} from './lib/routing-workload.js'
import { median } from './lib/stats.js'

const gatewayScript = fileURLToPath(new URL('./replica-gateway.js', import.meta.url))
const CLOCK_TICKS = 100

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
      server.close(() => resolve(port))
    })
  })
}

async function startRedis() {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  })
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true })
  client.on('error', () => {})
  for (let i = 0; i < 100; i++) {
    try {
      await client.connect()
      break
    } catch {
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    client,
    stop: () => {
      client.disconnect()
      child.kill('SIGKILL')
    },
  }
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** Script calls Redis ran, and the CPU seconds it used. */
async function redisCounters(client) {
  const stats = await client.info('commandstats')
  const calls = (name) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
  const cpu = await client.info('cpu')
  const seconds = (name) => Number(new RegExp(`${name}:([\\d.]+)`).exec(cpu)?.[1] ?? 0)
  return {
    calls: calls('evalsha') + calls('eval'),
    cpu: seconds('used_cpu_sys') + seconds('used_cpu_user'),
  }
}

async function startReplicas(n, urls, routingState, slow = 1, prefixAffinity = undefined) {
  const options = {
    backends: urls.map((url, i) => ({
      url,
      id: BACKENDS[i].name,
      weight: BACKENDS[i].capacity,
      metrics: 'vllm',
    })),
    strategy: 'prefix-affinity',
    ...(prefixAffinity ? { prefixAffinity } : {}),
    loadReports: { intervalMs: 200 * slow },
    ...(routingState ? { routingState } : {}),
  }
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      startProcess({
        name: `replica ${i}`,
        cmd: process.execPath,
        args: [gatewayScript, JSON.stringify(options)],
        core: null,
        readyLine: jsonLine,
        readyTimeoutMs: 30_000,
      }),
    ),
  )
}

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      out: { type: 'string' },
      replicas: { type: 'string' },
      loads: { type: 'string' },
      shared: { type: 'string' },
      runs: { type: 'string' },
      'phase-s': { type: 'string' },
      'warm-s': { type: 'string' },
      slow: { type: 'string' },
      memory: { type: 'string' },
      'overlap-turns': { type: 'boolean' },
      capacity: { type: 'string' },
      'load-factor': { type: 'string' },
    },
  })
  const only = values.replicas?.split(',').map(Number)
  const quick = values.quick === true
  const meanTokens = meanParetoTokens(WORKLOAD.tokens.min, WORKLOAD.tokens.alpha, WORKLOAD.tokens.max)
  const slow = Number(values.slow ?? 1)
  const runs = Number(values.runs ?? 1)
  const bound = poolCapacity(meanTokens, slow)
  const loads = values.loads?.split(',').map(Number) ?? (quick ? [0.5] : [0.5, 0.8])
  const phaseMs = values['phase-s'] ? Number(values['phase-s']) * 1000 : quick ? 3_000 : 6_000
  const warmMs = values['warm-s'] ? Number(values['warm-s']) * 1000 : quick ? 1_500 : 3_000
  const timeoutMs = 60_000 * slow
  const waitForAnswers = values['overlap-turns'] !== true
  const prefixAffinity = values['load-factor'] ? { loadFactor: Number(values['load-factor']) } : undefined
  const configs = [
    { replicas: 1, shared: false },
    { replicas: 1, shared: true },
    { replicas: 2, shared: false },
    { replicas: 2, shared: true },
    { replicas: 4, shared: false },
    { replicas: 4, shared: true },
  ]
  const texts = conversationTexts()
  const results = []
  const redis = await startRedis()
  let memory
  let capacity = bound
  try {
    if (values.capacity === 'measured') {
      capacity = await measureCapacity({ slow, texts, quick, timeoutMs })
      console.error(
        `  sustained: ${num(capacity)} req/s, ${pct(capacity / bound)} of the perfect-cache bound`,
      )
    }
    for (let round = 0; round < runs; round++)
      for (const [k, config] of configs.entries()) {
        if (only && !only.includes(config.replicas)) continue
        if (values.shared !== undefined && String(config.shared) !== values.shared) continue
        const backends = await Promise.all(BACKENDS.map((b) => startBackend(b, 0, slow)))
        const urls = backends.map((b) => b.ready)
        const prefix = `bench${round}-${k}:`
        const replicas = await startReplicas(
          config.replicas,
          urls,
          config.shared && { url: redis.url, prefix },
          slow,
          prefixAffinity,
        )
        const targets = replicas.map((r) => `http://127.0.0.1:${r.ready.port}/v1/chat/completions`)
        const turnOf = new Array(WORKLOAD.conversations).fill(0)
        try {
          await runPhase({
            url: targets,
            ratePerSecond: capacity * 0.5,
            durationMs: warmMs,
            seed: 100 + 1000 * round,
            texts,
            turnOf,
            timeoutMs,
            waitForAnswers,
          })
          for (const [p, load] of loads.entries()) {
            const before = await Promise.all(urls.map(prefixCounters))
            const redisBefore = await redisCounters(redis.client)
            const cpuBefore = replicas.reduce((sum, r) => sum + cpuSeconds(r.pid), 0)
            const run = await runPhase({
              url: targets,
              ratePerSecond: capacity * load,
              durationMs: phaseMs,
              seed: p + 1 + 1000 * round,
              texts,
              turnOf,
              timeoutMs,
              waitForAnswers,
            })
            const cpu = replicas.reduce((sum, r) => sum + cpuSeconds(r.pid), 0) - cpuBefore
            const redisAfter = await redisCounters(redis.client)
            const after = await Promise.all(urls.map(prefixCounters))
            const s = summarizePhase(run, before, after)
            const row = {
              ...config,
              run: round,
              load,
              s,
              cpuMsPerRequest: (cpu * 1000) / s.requests,
              redisCallsPerRequest: (redisAfter.calls - redisBefore.calls) / s.requests,
              redisCpuUsPerRequest: ((redisAfter.cpu - redisBefore.cpu) * 1e6) / s.requests,
            }
            results.push(row)
            console.error(
              `  run ${round + 1}: ${config.replicas} replica(s) ${config.shared ? 'shared' : 'alone'} ${pct(load)}: ${s.requests} req, ` +
                `hit ${pct(s.hitRate)}, TTFT p50 ${num(s.ttft.p50)} p90 ${num(s.ttft.p90)} ms, ${s.errors} errors, ${s.overlapped} overlapped, ` +
                `gateway CPU ${num(row.cpuMsPerRequest)} ms/req, Redis ${num(row.redisCallsPerRequest)} calls/req ${num(row.redisCpuUsPerRequest)} µs/req`,
            )
          }
        } finally {
          await Promise.all(replicas.map((r) => r.stop()))
          await Promise.all(backends.map((b) => b.stop()))
        }
      }
    if (values.memory !== 'false') memory = await memoryPer1000(redis)
  } finally {
    redis.stop()
    await stopAll()
  }
  const markdown = report(results, {
    loads,
    capacity,
    bound,
    prefixAffinity,
    phaseMs,
    warmMs,
    quick,
    memory,
    slow,
    runs,
    waitForAnswers,
    argv: process.argv.slice(2).filter((a, i, all) => a !== '--out' && all[i - 1] !== '--out'),
  })
  console.log(markdown)
  if (values.out) writeFileSync(values.out, markdown)
}

/**
 * What "100% load" is: the answers per second one replica sustains in front of fresh servers with
 * every conversation chatting back-to-back (`sustainedThroughput`).
 */
async function measureCapacity({ slow, texts, quick, timeoutMs }) {
  const backends = await Promise.all(BACKENDS.map((b) => startBackend(b, 0, slow)))
  const [replica] = await startReplicas(
    1,
    backends.map((b) => b.ready),
    false,
    slow,
  )
  try {
    return await sustainedThroughput({
      url: `http://127.0.0.1:${replica.ready.port}/v1/chat/completions`,
      warmMs: (quick ? 3_000 : 6_000) * slow,
      durationMs: (quick ? 5_000 : 15_000) * slow,
      texts,
      turnOf: new Array(WORKLOAD.conversations).fill(0),
      timeoutMs,
    })
  } finally {
    await replica.stop()
    await Promise.all(backends.map((b) => b.stop()))
  }
}

/**
 * Redis memory the shared state holds for 1,000 conversations: one replica with routingState
 * routes the first turn of 1,000 distinct conversations (the workload's prompt sizes), then every
 * key under its prefix is measured with MEMORY USAGE.
 */
async function memoryPer1000(redis) {
  const backends = await Promise.all(BACKENDS.map((b) => startBackend(b)))
  const urls = backends.map((b) => b.ready)
  const prefix = 'benchmem:'
  const [replica] = await startReplicas(1, urls, { url: redis.url, prefix })
  const texts = conversationTexts(11, 'Memory')
  const target = `http://127.0.0.1:${replica.ready.port}/v1/chat/completions`
  try {
    let blocks = 0
    for (let batch = 0; batch < 1000; batch += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const c = batch + i
          const conv = texts[c % texts.length]
          const messages = [
            { role: 'system', content: `${c}: ${conv.system}` },
            { role: 'user', content: conv.turns[0].user },
          ]
          const res = await request(target, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ model: 'fake-model', max_tokens: 1, messages }),
          })
          await res.body.text()
        }),
      )
    }
    let bytes = 0
    let cursor = '0'
    do {
      const [next, keys] = await redis.client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
      cursor = next
      for (const key of keys) {
        bytes += Number(await redis.client.memory('USAGE', key, 'SAMPLES', '0'))
        if (key.includes(':p:')) blocks += await redis.client.zcard(key)
      }
    } while (cursor !== '0')
    return { bytes, blocks }
  } finally {
    await replica.stop()
    await Promise.all(backends.map((b) => b.stop()))
  }
}

function report(
  results,
  {
    loads,
    capacity,
    bound,
    prefixAffinity,
    phaseMs,
    warmMs,
    quick,
    memory,
    slow,
    runs,
    argv,
    waitForAnswers,
  },
) {
  const command = `node bench/replicas.js${argv.length ? ` ${argv.join(' ')}` : ''}`
  const lines = [
    '## Gateway replicas sharing routing state',
    '',
    `_${quick ? 'Quick' : 'Full'} run, ${new Date().toISOString()}; \`${command}\`, ` +
      'on the shared 2-core machine: compare rows, not absolute figures._',
    '',
    `The workload of "Routing on prefixes and reported load" (${WORKLOAD.conversations} conversations with their own ` +
      `${WORKLOAD.systemChars}-character system prompt and a growing history; Poisson arrivals, each the next turn of a ` +
      `conversation drawn at random${waitForAnswers ? ' among those whose previous turn has been answered' : ', answered or not'}) against the same three fake vLLM servers, through 1, 2 or 4 Fastify replicas ` +
      `(prefix-affinity${prefixAffinity ? ` with \`loadFactor: ${prefixAffinity.loadFactor}\`` : ''}, vLLM metrics scraped every ${200 * slow} ms by each replica); each arrival goes to the next replica, ` +
      'so a conversation\'s turns land on different replicas. "shared": `routingState` on a private redis-server. ' +
      `Loads are fractions of ${num(capacity)} req/s${
        capacity === bound
          ? ", the perfect-cache bound (every prompt's history cached, only its new turn prefilled)"
          : `, the answers a second one replica sustained in front of these servers with all ${WORKLOAD.conversations} conversations chatting back-to-back for ${(quick ? 5 : 15) * slow} s (${pct(capacity / bound)} of the perfect-cache bound, ${num(bound)} req/s, which leaves out the misses, evictions and spills of a full pool)`
      }${slow !== 1 ? ` (servers ${slow}× slower than the other suites', arrivals ${slow}× rarer)` : ''}; ` +
      `fresh servers per row, a ${warmMs / 1000} s warm-up at 50%, then ${phaseMs / 1000} s per load` +
      `${runs > 1 ? `; ${runs} runs, each with its own arrival seeds, the same seeds for every row of a run` : ''}. ` +
      "Gateway CPU is the replicas' CPU time over the phase per request; Redis calls are " +
      'script calls (EVALSHA/EVAL) per request, heartbeats included; "overlapped turns" were sent while their ' +
      "conversation's previous turn was still unanswered" +
      `${waitForAnswers ? ' (every conversation was waiting for an answer)' : ''}.`,
    '',
  ]
  const label = (r) => `${r.replicas} replica${r.replicas > 1 ? 's' : ''}${r.shared ? ', shared' : ''}`
  for (const load of loads) {
    lines.push(`### ${pct(load)} load`, '')
    const rows = results
      .filter((r) => r.load === load)
      .map((r) => [
        ...(runs > 1 ? [String(r.run + 1)] : []),
        label(r),
        pct(r.s.hitRate),
        num(r.s.ttft.p50),
        num(r.s.ttft.p90),
        num(r.s.ttft.p99),
        num(r.cpuMsPerRequest),
        r.shared ? num(r.redisCallsPerRequest) : '—',
        r.shared ? num(r.redisCpuUsPerRequest) : '—',
        pct(r.s.overlapped / r.s.requests),
        String(r.s.errors),
      ])
    lines.push(
      table(
        [
          ...(runs > 1 ? ['run'] : []),
          'gateways',
          'prefix hit',
          'TTFT p50 ms',
          'p90 ms',
          'p99 ms',
          'gateway CPU ms/req',
          'Redis calls/req',
          'Redis CPU µs/req',
          'overlapped turns',
          'errors',
        ],
        rows,
      ),
      '',
    )
    if (runs > 1)
      lines.push(
        ...acrossRuns(
          results.filter((r) => r.load === load),
          label,
        ),
        '',
      )
    for (const n of [2, 4]) {
      for (const shared of [false, true]) {
        const pairs = []
        for (let run = 0; run < runs; run++) {
          const one = results.find((r) => r.run === run && r.load === load && r.replicas === 1 && !r.shared)
          const many = results.find(
            (r) => r.run === run && r.load === load && r.replicas === n && r.shared === shared,
          )
          if (one && many)
            pairs.push({ hit: many.s.hitRate / one.s.hitRate - 1, p90: many.s.ttft.p90 / one.s.ttft.p90 })
        }
        if (pairs.length === 0) continue
        const within = pairs.filter((x) => Math.abs(x.hit) <= 0.1 && x.p90 <= 1.1).length
        const each = pairs
          .map((x) => `${x.hit >= 0 ? '+' : ''}${num(x.hit * 100)}%, ×${num(x.p90)}`)
          .join('; ')
        lines.push(
          `${n} replicas${shared ? ' sharing routingState' : ' alone'} against 1 replica (prefix hit, TTFT p90), ` +
            `${pairs.length > 1 ? `per run: ${each}; median ${signed(median(pairs.map((x) => x.hit)) * 100)}%, ` + `×${num(median(pairs.map((x) => x.p90)))}` : each}` +
            `; within 10% of both in ${within} of ${pairs.length}.`,
          '',
        )
      }
    }
  }
  if (memory) {
    lines.push(
      `Redis memory for 1,000 conversations (first turn each, ~${Math.round(memory.blocks / 1000)} prefix blocks of ` +
        `256 characters per conversation): ${num(memory.bytes / 1024)} KiB, ${num(memory.bytes / memory.blocks)} bytes per block. ` +
        'Each backend keeps at most `prefixAffinity.indexBlocks` blocks (default 16,384) and forgets blocks unused for ' +
        '`routingState.prefixTtlMs`.',
      '',
    )
  }
  return lines.join('\n')
}

/**
 * Per configuration over the runs: median hit rate and TTFT p90, and how many runs ended congested
 * (more than a tenth of the turns overlapped: every conversation was waiting for an answer, so
 * answers came slower than arrivals). A pool near its capacity lands in either state from run to
 * run, so a median and a count say more than one run's ratio.
 */
function acrossRuns(rows, label) {
  const byConfig = new Map()
  for (const r of rows) {
    const key = label(r)
    if (!byConfig.has(key)) byConfig.set(key, [])
    byConfig.get(key).push(r)
  }
  const congested = (r) => r.s.overlapped > r.s.requests / 10
  return [
    table(
      ['gateways', 'runs', 'median prefix hit', 'median TTFT p90 ms', 'runs congested'],
      [...byConfig].map(([key, list]) => [
        key,
        String(list.length),
        pct(median(list.map((r) => r.s.hitRate))),
        num(median(list.map((r) => r.s.ttft.p90))),
        `${list.filter(congested).length} of ${list.length}`,
      ]),
    ),
  ]
}

function signed(x) {
  return `${x >= 0 ? '+' : ''}${num(x)}`
}

await main()
