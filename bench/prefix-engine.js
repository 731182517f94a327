/**
 * Prefix affinity against round robin under concurrency, on three servers of two batch slots each:
 * a few long system prompts shared by closed-loop clients, each request one prompt drawn at random
 * plus its own short question, streamed. TTFT is measured at the client (request sent → first body
 * bytes). Strategies alternate within a run (the first one swaps every run) and each strategy gets
 * fresh servers, so a noisy host hurts both alike and no cache carries over.
 *
 *   node bench/prefix-engine.js [--engine fake|llama] [--clients 6] [--runs 5] [--requests 20]
 *     [--prompts 8] [--prompt-chars 8800] [--answer-tokens 16] [--threads 1] [--out FILE]
 *
 * `--engine llama` runs llama.cpp's llama-server: set LLAMA_SERVER and LLAMA_MODEL (the paths the
 * engine build script prints). `--engine fake` runs examples/fake-model-server.js shaped like it
 * (two slots, a 4k-token KV cache, ~4k prompt tokens a second of prefill).
 */
import { writeFileSync } from 'node:fs'
import { loadavg } from 'node:os'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { Agent, request } from 'undici'
import { num } from './lib/markdown.js'
import { seededRandom } from './lib/poisson.js'
import { freePort, jsonLine, startProcess, stopAll } from './lib/processes.js'
import { summarize } from './lib/stats.js'

const root = fileURLToPath(new URL('../', import.meta.url))
const { values } = parseArgs({
  options: {
    engine: { type: 'string', default: 'fake' },
    clients: { type: 'string', default: '6' },
    runs: { type: 'string', default: '5' },
    requests: { type: 'string', default: '20' },
    prompts: { type: 'string', default: '8' },
    'prompt-chars': { type: 'string', default: '8800' },
    'answer-tokens': { type: 'string', default: '16' },
    threads: { type: 'string', default: '1' },
    strategies: { type: 'string', default: 'prefix-affinity,round-robin' },
    out: { type: 'string' },
  },
})
const engine = values.engine
const clients = Number(values.clients)
const runs = Number(values.runs)
const perClient = Number(values.requests)
const answerTokens = Number(values['answer-tokens'])
const strategies = values.strategies.split(',')
const WORDS = 'model token cache prefix batch queue server prompt answer system rule tool user turn'.split(
  ' ',
)

function promptTexts(count, chars) {
  const random = seededRandom(11)
  return Array.from({ length: count }, (_, i) => {
    let text = `Prompt ${i}. You are assistant number ${i}.`
    while (text.length < chars) text += ` ${WORDS[Math.floor(random() * WORDS.length)]}`
    return text.slice(0, chars)
  })
}

async function startBackend(i) {
  if (engine === 'llama') {
    const server = process.env.LLAMA_SERVER
    const model = process.env.LLAMA_MODEL
    if (!server || !model) throw new Error('--engine llama needs LLAMA_SERVER and LLAMA_MODEL')
    const port = await freePort()
    const threads = values.threads
    const p = await startProcess({
      name: `llama ${i}`,
      cmd: server,
      args: [
        '-m',
        model,
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '-np',
        '2',
        '-c',
        '8192',
        '--metrics',
        '-t',
        threads,
        '-tb',
        threads,
        '--no-webui',
      ],
      core: null,
      readyPort: port,
      readyTimeoutMs: 120_000,
    })
    const url = `http://127.0.0.1:${port}`
    for (let t = 0; ; t++) {
      const res = await request(`${url}/health`).catch(() => undefined)
      const ok = res?.statusCode === 200
      await res?.body.dump()
      if (ok) break
      if (t > 600) throw new Error(`llama ${i}: not healthy`)
      await new Promise((r) => setTimeout(r, 100))
    }
    return { url, stop: () => p.stop() }
  }
  const p = await startProcess({
    name: `fake ${i}`,
    cmd: process.execPath,
    args: [
      `${root}examples/fake-model-server.js`,
      '--name',
      `s${i}`,
      '--capacity',
      '2',
      '--ttft',
      '5',
      '--tpt',
      '8',
      '--prefill-tps',
      '4000',
      '--kv-tokens',
      '4096',
      '--tokens',
      String(answerTokens),
      '--metrics',
      'llamacpp',
      '--seed',
      String(i + 1),
    ],
    core: null,
    readyLine: (line) => (line.startsWith('http://') ? line.trim() : undefined),
  })
  return { url: p.ready, stop: () => p.stop() }
}

async function startGateway(strategy, urls) {
  const options = {
    backends: urls.map((url, i) => ({ url, id: `s${i}`, metrics: 'llamacpp' })),
    strategy,
    loadReports: { intervalMs: 100 },
  }
  const p = await startProcess({
    name: strategy,
    cmd: process.execPath,
    args: [`${root}bench/routing-gateway.js`, JSON.stringify(options)],
    core: null,
    readyLine: jsonLine,
    readyTimeoutMs: 30_000,
  })
  return { port: p.ready.port, stop: () => p.stop() }
}

/** One closed-loop client: `perClient` requests one after another, each a prompt drawn at random. */
async function client(url, dispatcher, prompts, seed, out) {
  const random = seededRandom(seed)
  for (let k = 0; k < perClient; k++) {
    const p = Math.floor(random() * prompts.length)
    const body = JSON.stringify({
      model: 'fake-model',
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: answerTokens,
      messages: [
        { role: 'system', content: prompts[p] },
        { role: 'user', content: `Question ${seed}-${k}: what is ${Math.floor(random() * 1e6)}?` },
      ],
    })
    const t0 = performance.now()
    const o = { prompt: p, ttftMs: Number.NaN, prompt_tokens: 0, cached: 0, error: null }
    try {
      const res = await request(url, {
        method: 'POST',
        dispatcher,
        body,
        headers: { 'content-type': 'application/json' },
      })
      let text = ''
      for await (const chunk of res.body) {
        if (Number.isNaN(o.ttftMs)) o.ttftMs = performance.now() - t0
        text += chunk.toString()
      }
      if (res.statusCode !== 200) o.error = `http-${res.statusCode}`
      const usage = /"prompt_tokens":(\d+)/.exec(text.slice(-4000))
      const cached =
        /"cached_tokens":(\d+)/.exec(text.slice(-4000)) ?? /"cache_n":(\d+)/.exec(text.slice(-4000))
      if (usage) o.prompt_tokens = Number(usage[1])
      if (cached) o.cached = Number(cached[1])
    } catch (err) {
      o.error = err?.code ?? err?.name ?? 'error'
    }
    out.push(o)
  }
}

async function runOne(strategy, run, prompts) {
  const backends = await Promise.all([0, 1, 2].map(startBackend))
  const gateway = await startGateway(
    strategy,
    backends.map((b) => b.url),
  )
  const dispatcher = new Agent({ connections: clients * 2, headersTimeout: 120_000, bodyTimeout: 120_000 })
  const url = `http://127.0.0.1:${gateway.port}/v1/chat/completions`
  const load = loadavg()[0]
  const outcomes = []
  try {
    await Promise.all(
      Array.from({ length: clients }, (_, c) =>
        client(url, dispatcher, prompts, run * 100 + c + 1, outcomes),
      ),
    )
    const snapshot = await request(`http://127.0.0.1:${gateway.port}/backends`).then((r) => r.body.json())
    const ok = outcomes.filter((o) => o.error === null)
    const promptTokens = ok.reduce((s, o) => s + o.prompt_tokens, 0)
    return {
      ttft: summarize(ok.map((o) => o.ttftMs)),
      errors: outcomes.length - ok.length,
      cold: ok.filter((o) => o.cached < o.prompt_tokens / 2).length,
      warmTtft: summarize(ok.filter((o) => o.cached >= o.prompt_tokens / 2).map((o) => o.ttftMs)),
      coldTtft: summarize(ok.filter((o) => o.cached < o.prompt_tokens / 2).map((o) => o.ttftMs)),
      promptTokens: ok.length > 0 ? promptTokens / ok.length : 0,
      cachedShare: promptTokens > 0 ? ok.reduce((s, o) => s + o.cached, 0) / promptTokens : Number.NaN,
      shares: snapshot.map((b) => b.totalRequests),
      load,
    }
  } finally {
    await dispatcher.close().catch(() => {})
    await gateway.stop()
    await Promise.all(backends.map((b) => b.stop()))
  }
}

async function main() {
  const prompts = promptTexts(Number(values.prompts), Number(values['prompt-chars']))
  const rows = []
  try {
    for (let run = 0; run < runs; run++) {
      const order = run % 2 === 0 ? strategies : [...strategies].reverse()
      const result = {}
      for (const strategy of order) {
        result[strategy] = await runOne(strategy, run, prompts)
        const r = result[strategy]
        console.error(
          `run ${run + 1} ${strategy}: TTFT p50 ${num(r.ttft.p50)} p90 ${num(r.ttft.p90)} ms, cached ${num(r.cachedShare * 100)}%, ${r.cold} cold (p50 ${num(r.coldTtft.p50)} ms; warm p50 ${num(r.warmTtft.p50)} p90 ${num(r.warmTtft.p90)} ms), ` +
            `${num(r.promptTokens)} prompt tokens, requests per server ${r.shares.join('/')}, errors ${r.errors}, load average ${r.load.toFixed(2)}`,
        )
      }
      rows.push(result)
    }
  } finally {
    await stopAll()
  }
  const [a, b] = strategies
  const lines = [
    `## Prefix affinity under concurrency (${engine === 'llama' ? 'llama-server' : 'fake server'})`,
    '',
    `_${new Date().toISOString()}; \`node bench/prefix-engine.js --engine ${engine} --clients ${clients} --runs ${runs} --requests ${perClient}\`._`,
    '',
    `3 servers × 2 slots; ${values.prompts} system prompts of ${values['prompt-chars']} characters; ${clients} closed-loop clients × ${perClient} streamed requests of ${answerTokens} tokens; strategies alternate within each run, fresh servers for each.`,
    '',
    `| run | ${a} p50 / p90 ms | ${b} p50 / p90 ms | p90 ratio | cached ${a} / ${b} | load avg |`,
    '| --- | --- | --- | --- | --- | --- |',
  ]
  for (const [i, r] of rows.entries()) {
    const x = r[a]
    const y = r[b]
    lines.push(
      `| ${i + 1} | ${num(x.ttft.p50)} / ${num(x.ttft.p90)} | ${num(y.ttft.p50)} / ${num(y.ttft.p90)} | ×${(x.ttft.p90 / y.ttft.p90).toFixed(2)} | ` +
        `${num(x.cachedShare * 100)}% / ${num(y.cachedShare * 100)}% | ${x.load.toFixed(1)} / ${y.load.toFixed(1)} |`,
    )
  }
  const markdown = lines.join('\n')
  console.log(markdown)
  if (values.out) writeFileSync(values.out, `${markdown}\n`)
}

await main()
