/**
 * Strategies side by side on real llama.cpp `llama-server`s (CPU, the tiny random-weight model of
 * test/engines/build-engine.mjs, built on first use): 3 servers × 2 slots, a shared-prefix workload
 * (8 system prompts of ~1,550 tokens, a short question each), closed-loop clients streaming 8
 * tokens per answer. Reports time to first token (p50, p90) and the share of prompt tokens the
 * servers took from their cache (`usage.prompt_tokens_details.cached_tokens`). Every cell
 * (strategy × clients × run) gets freshly started servers, so every cache starts cold; within a run
 * the strategies take turns, so drift in the machine's load spreads over all of them.
 *
 *   node bench/engine.js [--clients 1,3,6] [--runs 3] [--strategies round-robin,least-load,prefix-affinity]
 *                        [--requests 12] [--out FILE] [--no-write] [--log FILE]
 *
 * Writes its section of bench/RESULTS.md (or FILE); `--no-write` only prints it. `--log` writes one
 * JSON line per request (cell, client, prompt, the backend that answered, its times and the
 * server's `usage` and `timings`), to see where cold prefills and waits come from. Needs `npm run build`.
 */
import { spawn } from 'node:child_process'
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg } from 'node:os'
import { parseArgs } from 'node:util'
import { ensureEngine } from '../test/engines/build-engine.mjs'
import { num, pct, table } from './lib/markdown.js'
import { percentile } from './lib/stats.js'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1,3,6' },
    runs: { type: 'string', default: '3' },
    strategies: { type: 'string', default: 'round-robin,least-load,prefix-affinity' },
    requests: { type: 'string', default: '12' },
    out: { type: 'string' },
    'no-write': { type: 'boolean', default: false },
    log: { type: 'string' },
  },
})
const CLIENTS = values.clients.split(',').map(Number)
const RUNS = Number(values.runs)
const STRATEGIES = values.strategies.split(',')
const REQUESTS = Number(values.requests)
const SERVERS = 3
const SLOTS = 2
const PROMPTS = 8
const PROMPT_WORDS = 1_550
const MAX_TOKENS = 8

/**
 * llama-server's flags beyond model and address. Its defaults that decide what round robin finds
 * warm are left as they are and stated with the results: a host-memory prompt cache (`--cache-ram`
 * 8192 MiB) that keeps every prompt a slot gave up, slots chosen by prompt similarity
 * (`--slot-prompt-similarity` 0.1), no KV shifting (`--cache-reuse` 0), a KV cache per slot.
 */
const LLAMA_ARGS = [
  '--parallel',
  `${SLOTS}`,
  '--ctx-size',
  `${SLOTS * 4096}`,
  '--threads',
  '1',
  '--metrics',
  '--no-webui',
]

/** Strategies that read the servers' own load (`/metrics`); the others ignore it. */
const READS_METRICS = new Set(['least-load', 'prefix-affinity'])

function seededRandom(seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// About one token per word with llama's SentencePiece vocabulary.
const WORDS =
  'model token cache prefix batch queue server prompt answer system rule tool user turn gateway slot'.split(
    ' ',
  )
const SYSTEM_PROMPTS = Array.from({ length: PROMPTS }, (_, p) => {
  const random = seededRandom(1000 + p)
  const words = [`Instructions set ${p}:`]
  for (let i = 0; i < PROMPT_WORDS; i++) words.push(WORDS[Math.floor(random() * WORDS.length)])
  return words.join(' ')
})

/** Starts a process and resolves with the first stdout line `ready` accepts (and the process). */
function startProcess(cmd, args, ready, what) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    running.add(child)
    child.once('exit', () => running.delete(child))
    let output = ''
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${what} did not start within 60 s:\n${output.slice(-2000)}`))
    }, 60_000)
    const onData = (chunk) => {
      output += chunk
      const found = ready(output)
      if (found !== undefined) {
        clearTimeout(timer)
        resolve({ child, value: found })
      }
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited with ${code}:\n${output.slice(-2000)}`))
    })
  })
}

/** Every process this bench started and has not stopped: killed too when the bench is interrupted. */
const running = new Set()
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    for (const child of running) child.kill('SIGKILL')
    process.exit(130)
  })
}

function stop(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve()
    child.removeAllListeners('exit')
    child.once('exit', () => resolve())
    child.kill('SIGKILL')
  })
}

async function startLlamaServer(engine) {
  const args = ['-m', engine.model, '--host', '127.0.0.1', '--port', '0', ...LLAMA_ARGS]
  const { child, value: port } = await startProcess(
    engine.server,
    args,
    (out) => /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1],
    'llama-server',
  )
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 600; i++) {
    const ok = await fetch(`${url}/health`).then(
      (r) => r.status === 200,
      () => false,
    )
    if (ok) return { child, url }
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error(`llama-server at ${url} never became healthy`)
}

async function startGateway(strategy, urls) {
  const options = {
    strategy,
    backendHeader: 'x-tollgate-backend',
    backends: urls.map((url, i) => ({
      url,
      id: `llama-${i + 1}`,
      ...(READS_METRICS.has(strategy) ? { metrics: 'llamacpp' } : {}),
    })),
    ...(READS_METRICS.has(strategy) ? { loadReports: { intervalMs: 200 } } : {}),
  }
  const script = new URL('./routing-gateway.js', import.meta.url).pathname
  const { child, value } = await startProcess(
    process.execPath,
    [script, JSON.stringify(options)],
    (out) => /^\{"port":(\d+)\}$/m.exec(out)?.[1],
    'gateway',
  )
  return { child, url: `http://127.0.0.1:${value}/v1/chat/completions` }
}

/** One streamed request: time to the first token and the usage the server reported. */
async function ask(url, prompt, question) {
  const started = performance.now()
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: [
        { role: 'system', content: prompt },
        { role: 'user', content: question },
      ],
      max_tokens: MAX_TOKENS,
      stream: true,
      stream_options: { include_usage: true },
    }),
  })
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`)
  const backend = res.headers.get('x-tollgate-backend')
  const decoder = new TextDecoder()
  let buffered = ''
  let ttftMs
  let usage
  let timings
  for await (const chunk of res.body) {
    buffered += decoder.decode(chunk, { stream: true })
    let at = buffered.indexOf('\n\n')
    while (at >= 0) {
      const event = buffered.slice(0, at)
      buffered = buffered.slice(at + 2)
      at = buffered.indexOf('\n\n')
      if (!event.startsWith('data: {')) continue
      const data = JSON.parse(event.slice(6))
      if (ttftMs === undefined && typeof data.choices?.[0]?.delta?.content === 'string')
        ttftMs = performance.now() - started
      if (data.usage) usage = data.usage
      if (data.timings) timings = data.timings
    }
  }
  const endMs = performance.now()
  return { ttftMs: ttftMs ?? endMs - started, usage, backend, timings, startMs: started, endMs }
}

async function runCell(engine, strategy, clients, run) {
  const servers = await Promise.all(Array.from({ length: SERVERS }, () => startLlamaServer(engine)))
  const gateway = await startGateway(
    strategy,
    servers.map((s) => s.url),
  )
  const ttfts = []
  let prompt = 0
  let cached = 0
  const cellStart = performance.now()
  try {
    await Promise.all(
      Array.from({ length: clients }, async (_, c) => {
        const random = seededRandom(run * 100 + c)
        for (let i = 0; i < REQUESTS; i++) {
          const p = Math.floor(random() * PROMPTS)
          const answer = await ask(
            gateway.url,
            SYSTEM_PROMPTS[p],
            `Question ${c}.${i}: what does rule ${i} say?`,
          )
          ttfts.push(answer.ttftMs)
          if (values.log) logRequest({ strategy, clients, run, client: c, i, p, cellStart, answer })
          prompt += answer.usage?.prompt_tokens ?? 0
          cached += answer.usage?.prompt_tokens_details?.cached_tokens ?? 0
        }
      }),
    )
  } finally {
    await stop(gateway.child)
    await Promise.all(servers.map((s) => stop(s.child)))
  }
  return {
    p50: percentile(ttfts, 50),
    p90: percentile(ttfts, 90),
    cachedShare: prompt === 0 ? 0 : cached / prompt,
  }
}

async function main() {
  const engine = await ensureEngine()
  const load = [loadavg()[0]]
  const started = Date.now()
  /** @type {Record<string, Record<number, {p50: number, p90: number, cachedShare: number}[]>>} */
  const results = Object.fromEntries(
    STRATEGIES.map((s) => [s, Object.fromEntries(CLIENTS.map((c) => [c, []]))]),
  )
  /** The 1-minute load average at the end of each run. */
  const runLoad = []
  for (let run = 0; run < RUNS; run++) {
    for (const clients of CLIENTS) {
      for (const strategy of STRATEGIES) {
        const cell = await runCell(engine, strategy, clients, run)
        results[strategy][clients].push(cell)
        load.push(loadavg()[0])
        console.error(
          `run ${run + 1}/${RUNS} clients ${clients} ${strategy}: TTFT p50 ${cell.p50.toFixed(0)} ms, p90 ${cell.p90.toFixed(0)} ms, cached ${pct(cell.cachedShare)}`,
        )
      }
    }
    runLoad.push(loadavg()[0])
  }
  const section = render(results, load, runLoad, (Date.now() - started) / 1000)
  console.log(section)
  if (!values['no-write'])
    writeSection(values.out ?? new URL('./RESULTS.md', import.meta.url).pathname, section)
}

function logRequest({ strategy, clients, run, client, i, p, cellStart, answer }) {
  const line = {
    strategy,
    clients,
    run,
    client,
    i,
    prompt: p,
    backend: answer.backend,
    startMs: Math.round(answer.startMs - cellStart),
    ttftMs: Math.round(answer.ttftMs),
    endMs: Math.round(answer.endMs - cellStart),
    promptTokens: answer.usage?.prompt_tokens,
    cachedTokens: answer.usage?.prompt_tokens_details?.cached_tokens,
    serverPrefillMs: answer.timings?.prompt_ms,
    serverDecodeMs: answer.timings?.predicted_ms,
  }
  appendFileSync(values.log, `${JSON.stringify(line)}\n`)
}

function median(xs) {
  return percentile(xs, 50)
}

function render(results, load, runLoad, seconds) {
  const baseline = STRATEGIES[0]
  const rows = []
  for (const clients of CLIENTS) {
    for (const strategy of STRATEGIES) {
      const cells = results[strategy][clients]
      const base = results[baseline][clients]
      const ratios = cells.map((cell, i) => cell.p90 / base[i].p90)
      rows.push([
        `${clients}`,
        strategy,
        num(median(cells.map((c) => c.p50)), 3),
        num(median(cells.map((c) => c.p90)), 3),
        cells.map((c) => c.p90.toFixed(0)).join(' / '),
        strategy === baseline ? '1' : ratios.map((r) => r.toFixed(2)).join(' / '),
        pct(median(cells.map((c) => c.cachedShare))),
      ])
    }
  }
  const command = `node bench/engine.js --clients ${CLIENTS.join(',')} --runs ${RUNS} --strategies ${STRATEGIES.join(',')} --requests ${REQUESTS}`
  return [
    '## Real engine: llama-server, strategies side by side',
    '',
    `${SERVERS} llama.cpp \`llama-server\`s (CPU, 1 thread each, ${SLOTS} slots, the tiny random-weight model of`,
    '`test/engines/build-engine.mjs`) behind a Fastify gateway process; closed-loop clients each send',
    `${REQUESTS} streamed requests (${MAX_TOKENS} tokens) with one of ${PROMPTS} system prompts of ~${PROMPT_WORDS} tokens.`,
    'Fresh servers (cold caches) for every cell; medians over the runs, and each run’s p90 and its ratio to',
    `\`${baseline}\`'s in the same run. Cached share: prompt tokens the servers reused (\`cached_tokens\` ÷ \`prompt_tokens\`).`,
    `llama-server flags: \`${LLAMA_ARGS.join(' ')}\`; its defaults otherwise: \`--cache-ram 8192\` (a host-memory`,
    'prompt cache: a prompt a slot gives up is kept and loaded into the next slot that needs it, so round robin',
    'becomes warm on every server after one cold prefill per prompt and server), `--slot-prompt-similarity 0.1`,',
    '`--cache-reuse 0`, one KV cache per slot (a prompt running in one slot is prefilled again in the other).',
    '',
    table(
      [
        'clients',
        'strategy',
        'TTFT p50 (ms)',
        'TTFT p90 (ms)',
        'p90 per run (ms)',
        `p90 ÷ ${baseline}`,
        'cached',
      ],
      rows,
    ),
    '',
    `_${new Date().toISOString()}, \`${command}\`, ${seconds.toFixed(0)} s; ${cpus().length} cores shared with other work: 1-minute load average ${Math.min(...load).toFixed(1)}–${Math.max(...load).toFixed(1)} over the run (sampled after each cell; at the end of each run ${runLoad.map((l) => l.toFixed(1)).join(' / ')}), so compare within a run, not across files._`,
  ].join('\n')
}

/** Replaces this bench's section of RESULTS.md, or appends it. */
function writeSection(path, section) {
  const START = '<!-- suite:engine -->'
  const END = '<!-- /suite -->'
  let text = ''
  try {
    text = readFileSync(path, 'utf8')
  } catch {}
  const body = `${START}\n${section}\n${END}`
  const from = text.indexOf(START)
  if (from === -1) {
    writeFileSync(path, `${text.trimEnd()}\n\n${body}\n`)
    return
  }
  const end = text.indexOf(END, from)
  const next = text.indexOf('<!-- suite:', from + START.length)
  const until =
    end !== -1 && (next === -1 || end < next) ? end + END.length : next === -1 ? text.length : next
  writeFileSync(
    path,
    `${text.slice(0, from)}${body}${text.slice(until).startsWith('\n') ? '' : '\n'}${text.slice(until)}`,
  )
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
