/**
 * The shared-prefix multi-turn chat workload of `bench/routing.js` and `bench/routing-scenarios.js`:
 * fake vLLM servers with prefill and an LRU prefix cache, the gateways under test, and an open-loop
 * client whose arrivals are the next turns of interleaved conversations.
 */
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { Agent, request } from 'undici'
import { paretoTokens } from '../../examples/fake-model-server.js'
import { requestDeadline } from './deadline.js'
import { poissonSchedule, seededRandom } from './poisson.js'
import { jsonLine, LOAD_CORE, SERVER_CORE, startProcess } from './processes.js'
import { startNginx } from './proxy-configs.js'
import { summarize } from './stats.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const fakeServerScript = `${root}examples/fake-model-server.js`
const gatewayScript = fileURLToPath(new URL('../routing-gateway.js', import.meta.url))

export const CHARS_PER_TOKEN = 4
/** Shared by every server; capacity and prefill throughput differ (unequal GPUs). */
export const MODEL = { ttftMs: 30, tptMs: 8, batchSlowdown: 0.05, kvTokens: 40_000 }
export const BACKENDS = [
  { name: 'small', capacity: 4, prefillTps: 6_000, seed: 1 },
  { name: 'medium', capacity: 8, prefillTps: 12_000, seed: 2 },
  { name: 'large', capacity: 16, prefillTps: 24_000, seed: 3 },
]
/** 48 conversations of up to 10 turns: ~90 k prompt tokens in all, more than one server's KV cache. */
export const WORKLOAD = {
  conversations: 48,
  systemChars: 3_200,
  userChars: 240,
  assistantChars: 360,
  maxTurns: 10,
  tokens: { min: 8, alpha: 1.5, max: 160 },
}

/** @typedef {{ id: string, label: string, kind: 'tollgate' | 'nginx', strategy: string, metrics?: boolean }} Config */
/** @type {Config[]} */
export const CONFIGS = [
  { id: 'round-robin', label: 'tollgate round-robin', kind: 'tollgate', strategy: 'round-robin' },
  { id: 'least-latency', label: 'tollgate least-latency', kind: 'tollgate', strategy: 'least-latency' },
  {
    id: 'least-load',
    label: 'tollgate least-load (vLLM metrics)',
    kind: 'tollgate',
    strategy: 'least-load',
    metrics: true,
  },
  { id: 'nginx', label: 'nginx least_conn', kind: 'nginx', strategy: 'least_conn' },
  {
    id: 'consistent-hash',
    label: 'tollgate consistent-hash (key: conversation)',
    kind: 'tollgate',
    strategy: 'consistent-hash',
  },
  {
    id: 'prefix-affinity',
    label: 'tollgate prefix-affinity (vLLM metrics)',
    kind: 'tollgate',
    strategy: 'prefix-affinity',
    metrics: true,
  },
]
/** Strategies that see neither prefixes nor conversations: the goal compares against the best of these. */
export const PREFIX_BLIND = new Set(['round-robin', 'least-latency', 'least-load', 'nginx'])

const WORDS = 'model token cache prefix batch queue server prompt answer system rule tool user turn'.split(
  ' ',
)

/** Deterministic filler text of `chars` characters from `random`. */
function filler(random, chars) {
  let text = ''
  while (text.length < chars) text += `${WORDS[Math.floor(random() * WORDS.length)]} `
  return text.slice(0, chars)
}

export function conversationTexts(seed = 7, label = 'Conversation') {
  const random = seededRandom(seed)
  return Array.from({ length: WORKLOAD.conversations }, (_, c) => ({
    system: `${label} ${c}. ${filler(random, WORKLOAD.systemChars)}`,
    turns: Array.from({ length: WORKLOAD.maxTurns }, (_, t) => ({
      user: `Question ${t}: ${filler(random, WORKLOAD.userChars)}`,
      assistant: `Answer ${t}: ${filler(random, WORKLOAD.assistantChars)}`,
    })),
  }))
}

/**
 * Answers per second the pool sustains when every request's prefix is cached (only its new turn is
 * prefilled). `slow` is the servers' time scale (see `startBackend`): k times slower, k times fewer.
 */
export function poolCapacity(meanTokens, slow = 1) {
  const systemTokens = WORKLOAD.systemChars / CHARS_PER_TOKEN
  const turnTokens = (WORKLOAD.userChars + WORKLOAD.assistantChars) / CHARS_PER_TOKEN
  const newTokens = (systemTokens + WORKLOAD.maxTurns * turnTokens) / WORKLOAD.maxTurns
  let total = 0
  for (const b of BACKENDS) {
    const perToken = slow * MODEL.tptMs * (1 + MODEL.batchSlowdown * (b.capacity - 1))
    const prefillTps = b.prefillTps / slow
    const serviceMs = slow * MODEL.ttftMs + (newTokens / prefillTps) * 1000 + (meanTokens - 1) * perToken
    total += Math.min((b.capacity * 1000) / serviceMs, prefillTps / newTokens)
  }
  return total
}

/**
 * One fake vLLM server. `slow` stretches its time by that factor (first-token and per-token time
 * times `slow`, prefill throughput divided by it): the same queueing at 1/`slow` of the request
 * rate, so the machine's CPU weighs `slow` times less on what is measured.
 */
export async function startBackend(b, port = 0, slow = 1) {
  return startProcess({
    name: `backend ${b.name}`,
    cmd: process.execPath,
    args: [
      fakeServerScript,
      '--port',
      String(port),
      '--name',
      b.name,
      '--capacity',
      String(b.capacity),
      '--ttft',
      String(MODEL.ttftMs * slow),
      '--tpt',
      String(MODEL.tptMs * slow),
      '--batch-slowdown',
      String(MODEL.batchSlowdown),
      '--prefill-tps',
      String(b.prefillTps / slow),
      '--kv-tokens',
      String(MODEL.kvTokens),
      '--tokens',
      String(WORKLOAD.tokens.max * 10),
      '--seed',
      String(b.seed),
    ],
    core: LOAD_CORE,
    readyLine: (line) => (line.startsWith('http://') ? line.trim() : undefined),
  })
}

/** @param {Config} c @param {string[]} urls */
export async function startGateway(c, urls, extra = {}, zoneOf = {}) {
  if (c.kind === 'nginx') {
    const n = await startNginx({
      upstreams: urls.map((u) => new URL(u).host),
      method: 'least_conn',
      name: c.id,
    })
    return { port: n.port, stop: () => n.stop() }
  }
  const options = {
    backends: urls.map((url, i) => ({
      url,
      id: BACKENDS[i]?.name,
      weight: BACKENDS[i]?.capacity,
      ...(c.metrics ? { metrics: 'vllm' } : {}),
      ...(zoneOf[BACKENDS[i]?.name] ? { zone: zoneOf[BACKENDS[i]?.name] } : {}),
    })),
    strategy: c.strategy,
    ...(c.metrics ? { loadReports: { intervalMs: 200 } } : {}),
    ...extra,
  }
  const p = await startProcess({
    name: c.id,
    cmd: process.execPath,
    args: [gatewayScript, JSON.stringify(options)],
    core: SERVER_CORE,
    readyLine: jsonLine,
    readyTimeoutMs: 30_000,
    pinAfterReady: true,
  })
  return { port: p.ready.port, stop: () => p.stop() }
}

/** Prefix-cache hits and queries (tokens) a vLLM-format /metrics reports. */
export async function prefixCounters(url) {
  const res = await request(`${url}/metrics`)
  const text = await res.body.text()
  const value = (name) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? 0)
  return { hits: value('vllm:prefix_cache_hits_total'), queries: value('vllm:prefix_cache_queries_total') }
}

/**
 * Open-loop: each arrival is the next turn of a conversation drawn at random (so conversations
 * interleave), with its whole history, whether or not the previous turn has been answered. `url`
 * may be a list (gateway replicas behind a Service): arrivals go to each in turn.
 *
 * `waitForAnswers`: as a person chats, a conversation's next turn is sent only once its previous
 * turn has been answered; an arrival drawn for a conversation still waiting goes to the next one
 * that is not (and to the drawn one when all are waiting: counted as `overlapped`). Without it, a
 * queue that makes answers slower than arrivals sends turns whose prefix nobody has computed yet,
 * so every server misses it: a miss storm of the workload's making, not the router's.
 */
export async function runPhase({
  url,
  ratePerSecond,
  durationMs,
  seed,
  texts,
  turnOf,
  timeoutMs,
  waitForAnswers = false,
}) {
  const arrivals = poissonSchedule({ ratePerSecond, durationMs, seed })
  const pick = seededRandom(seed ^ 0x5bd1e995)
  const drawLength = paretoTokens(WORKLOAD.tokens.min, WORKLOAD.tokens.alpha, WORKLOAD.tokens.max)
  const lengthRandom = seededRandom(seed ^ 0x27d4eb2d)
  const dispatcher = new Agent({
    keepAliveTimeout: 30_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  })
  const pending = []
  const start = performance.now()
  // Turns of each conversation sent and not yet answered.
  const waiting = new Uint16Array(WORKLOAD.conversations)
  let overlapped = 0

  const bodyOf = (c, maxTokens) => nextTurnBody(texts, turnOf, c, maxTokens)

  async function one(scheduledAt, conversation, body, tokens, target) {
    const t0 = start + scheduledAt
    const outcome = { ttftMs: Number.NaN, e2eMs: Number.NaN, backend: null, error: null, tokens }
    const deadline = requestDeadline(timeoutMs)
    try {
      const res = await request(target, {
        method: 'POST',
        dispatcher,
        body,
        headers: { 'content-type': 'application/json', 'x-session-id': `c${conversation}` },
        signal: deadline.signal,
      })
      const backend = res.headers['x-backend']
      outcome.backend = typeof backend === 'string' ? backend : null
      let tail = ''
      let first = true
      for await (const chunk of res.body) {
        if (first) {
          outcome.ttftMs = performance.now() - t0
          first = false
        }
        tail = (tail + chunk.toString('latin1')).slice(-64)
      }
      outcome.e2eMs = performance.now() - t0
      if (res.statusCode !== 200) outcome.error = `http-${res.statusCode}`
      else if (!tail.includes('[DONE]')) outcome.error = 'incomplete'
    } catch (err) {
      outcome.error = err?.name === 'TimeoutError' ? 'timeout' : (err?.code ?? err?.name ?? 'error')
    } finally {
      deadline.clear()
      waiting[conversation]--
    }
    return outcome
  }

  let next = 0
  await new Promise((resolve) => {
    const tick = () => {
      const now = performance.now() - start
      while (next < arrivals.length && arrivals[next] <= now) {
        const at = arrivals[next++]
        let c = Math.floor(pick() * WORKLOAD.conversations)
        if (waitForAnswers && waiting[c] > 0) {
          let k = 1
          while (k < WORKLOAD.conversations && waiting[(c + k) % WORKLOAD.conversations] > 0) k++
          if (k < WORKLOAD.conversations) c = (c + k) % WORKLOAD.conversations
        }
        if (waiting[c] > 0) overlapped++
        waiting[c]++
        const tokens = drawLength(lengthRandom)
        const target = Array.isArray(url) ? url[(next - 1) % url.length] : url
        pending.push(one(at, c, bodyOf(c, tokens), tokens, target))
      }
      if (next >= arrivals.length) return resolve(undefined)
      setTimeout(tick, Math.max(0, arrivals[next] - (performance.now() - start)))
    }
    tick()
  })
  const outcomes = await Promise.all(pending)
  const elapsedMs = performance.now() - start
  await dispatcher.close().catch(() => {})
  return { outcomes, elapsedMs, arrivals: arrivals.length, overlapped }
}

export function summarizePhase(run, before, after) {
  const ok = run.outcomes.filter((o) => o.error === null)
  const counts = {}
  for (const o of run.outcomes) if (o.backend) counts[o.backend] = (counts[o.backend] ?? 0) + 1
  const routed = Object.values(counts).reduce((a, b) => a + b, 0)
  let hits = 0
  let queries = 0
  for (const [i, a] of after.entries()) {
    hits += a.hits - before[i].hits
    queries += a.queries - before[i].queries
  }
  return {
    requests: run.arrivals,
    overlapped: run.overlapped,
    errors: run.arrivals - ok.length,
    ttft: summarize(ok.map((o) => o.ttftMs)),
    e2e: summarize(ok.map((o) => o.e2eMs)),
    tokensPerSecond: ok.reduce((sum, o) => sum + o.tokens, 0) / (run.elapsedMs / 1000),
    hitRate: queries > 0 ? hits / queries : 0,
    shares: Object.fromEntries(BACKENDS.map((b) => [b.name, (counts[b.name] ?? 0) / (routed || 1)])),
  }
}

/**
 * Answers per second the pool actually sustains behind `url`: every conversation a person who
 * sends its next turn as soon as the last is answered (closed loop, no pause), for `durationMs`
 * after `warmMs`. More conversations than the pool has batch slots, so the servers stay full, with
 * the misses, evictions and spills a full pool has, which the perfect-cache bound of
 * `poolCapacity` leaves out.
 */
export async function sustainedThroughput({ url, durationMs, warmMs, texts, turnOf, timeoutMs }) {
  const drawLength = paretoTokens(WORKLOAD.tokens.min, WORKLOAD.tokens.alpha, WORKLOAD.tokens.max)
  const lengthRandom = seededRandom(0x9e3779b9)
  const dispatcher = new Agent({
    keepAliveTimeout: 30_000,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  })
  const targets = Array.isArray(url) ? url : [url]
  const start = performance.now()
  const countFrom = start + warmMs
  const end = countFrom + durationMs
  let answered = 0
  let sent = 0
  async function person(c) {
    while (performance.now() < end) {
      const body = nextTurnBody(texts, turnOf, c, drawLength(lengthRandom))
      const res = await request(targets[sent++ % targets.length], {
        method: 'POST',
        dispatcher,
        body,
        headers: { 'content-type': 'application/json', 'x-session-id': `c${c}` },
      })
      await res.body.text()
      const now = performance.now()
      if (res.statusCode === 200 && now >= countFrom && now < end) answered++
    }
  }
  await Promise.all(Array.from({ length: WORKLOAD.conversations }, (_, c) => person(c)))
  await dispatcher.close().catch(() => {})
  return answered / (durationMs / 1000)
}

/** The request body of conversation `c`'s next turn (with its whole history), advancing `turnOf`. */
function nextTurnBody(texts, turnOf, c, maxTokens) {
  const conv = texts[c]
  const turn = turnOf[c]
  turnOf[c] = (turn + 1) % WORKLOAD.maxTurns
  const messages = [{ role: 'system', content: conv.system }]
  for (let t = 0; t < turn; t++) {
    messages.push(
      { role: 'user', content: conv.turns[t].user },
      { role: 'assistant', content: conv.turns[t].assistant },
    )
  }
  messages.push({ role: 'user', content: conv.turns[turn].user })
  return JSON.stringify({ model: 'fake-model', stream: true, max_tokens: maxTokens, messages })
}
