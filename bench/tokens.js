#!/usr/bin/env node
/**
 * Token budgets: how right the accounting is, how far concurrency can overspend, and what a
 * token-limited forward costs in CPU over an unlimited one.
 *
 *   node bench/tokens.js [--requests 400] [--rounds 5] [--append]
 *
 * Everything runs in this process (gateway, fake model server, client), so the CPU figure is the
 * difference between two otherwise equal runs, alternated over rounds: the cost of the token path.
 * --append adds the results to bench/RESULTS.md.
 */
import { appendFileSync } from 'node:fs'
import http from 'node:http'
import { apiKeyKey } from '@tollgate/core'
import fastifyTollgate from '@tollgate/fastify'
import Fastify from 'fastify'
import { createRandom, startFakeModelServer } from '../examples/fake-model-server.js'
import { numberOption } from './lib/args.js'
import { postChat } from './lib/chat-client.js'

const REQUESTS = numberOption('requests', 400)
const ROUNDS = numberOption('rounds', 5)
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })

function post(port, body, headers = {}) {
  return postChat(port, JSON.stringify(body), {
    agent,
    headers: { authorization: 'Bearer sk-bench', ...headers },
  })
}

async function gateway(backends, tokens) {
  const settled = []
  const app = Fastify()
  await app.register(fastifyTollgate, {
    backends,
    keyGenerator: apiKeyKey,
    onTokensSettled: (_r, reservation) => settled.push(reservation),
  })
  app.post(
    '/v1/chat/completions',
    { config: { rateLimit: tokens === undefined ? false : { tokens } } },
    app.tollgate.forward(),
  )
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: app.server.address().port, settled }
}

/** A backend that streams a known number of one-word tokens and reports no usage. */
async function bareBackend() {
  let tokens = 0
  const server = http.createServer((req, res) => {
    const chunks = []
    req.on('data', (c) => chunks.push(c))
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString())
      const n = body.max_tokens ?? 16
      tokens += n
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for (let i = 0; i < n; i++) {
        res.write(
          `data: ${JSON.stringify({ choices: [{ index: 0, delta: { content: 'word ' }, finish_reason: null }] })}\n\n`,
        )
      }
      res.write(`data: ${JSON.stringify({ choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`)
      res.end('data: [DONE]\n\n')
    })
  })
  await new Promise((r) => server.listen(0, '127.0.0.1', r))
  return {
    server,
    url: `http://127.0.0.1:${server.address().port}`,
    get tokens() {
      return tokens
    },
  }
}

const random = createRandom(7)
function prompt() {
  const words = 5 + Math.floor(random() * 200)
  return Array.from({ length: words }, (_, i) => `w${i % 97}`).join(' ')
}

async function accuracy() {
  const fake = await startFakeModelServer({ answerTokens: (r) => 5 + Math.floor(r() * 300), seed: 3 })
  const g = await gateway([{ url: fake.url }], '1000000000 per day')
  const kinds = ['json', 'stream', 'stream-usage']
  for (let i = 0; i < REQUESTS; i++) {
    const kind = kinds[i % 3]
    const body = { model: 'fake-model', messages: [{ role: 'user', content: prompt() }], max_tokens: 400 }
    if (kind !== 'json') body.stream = true
    if (kind === 'stream-usage') body.stream_options = { include_usage: true }
    await post(g.port, body)
  }
  while (g.settled.length < REQUESTS) await new Promise((r) => setTimeout(r, 10))
  const charged = g.settled.reduce((s, r) => s + r.charged, 0)
  const real = fake.stats.promptTokens + fake.stats.tokens
  await g.app.close()
  await fake.close()

  const bare = await bareBackend()
  const b = await gateway([{ url: bare.url }], '1000000000 per day')
  let promptEstimate = 0
  for (let i = 0; i < REQUESTS / 4; i++) {
    const text = prompt()
    promptEstimate += Math.ceil(text.length / 4)
    await post(b.port, {
      model: 'x',
      messages: [{ role: 'user', content: text }],
      max_tokens: 5 + Math.floor(random() * 300),
      stream: true,
    })
  }
  while (b.settled.length < REQUESTS / 4) await new Promise((r) => setTimeout(r, 10))
  const estimated = b.settled.reduce((s, r) => s + r.charged, 0) - promptEstimate
  await b.app.close()
  bare.server.close()
  return {
    charged,
    real,
    sources: [...new Set(g.settled.map((r) => r.source))],
    estimated,
    bareReal: bare.tokens,
  }
}

async function overspend() {
  let worst = 0
  let perRequest = 0
  for (let round = 0; round < ROUNDS; round++) {
    const fake = await startFakeModelServer({ answerTokens: 50 })
    const g = await gateway([{ url: fake.url }], '2000 per minute')
    const answers = await Promise.all(
      Array.from({ length: 200 }, () =>
        post(g.port, {
          model: 'fake-model',
          messages: [{ role: 'user', content: 'hello there' }],
          max_tokens: 50,
        }),
      ),
    )
    const ok = answers.filter((a) => a.status === 200)
    perRequest = JSON.parse(ok[0].text).usage.total_tokens
    worst = Math.max(worst, fake.stats.promptTokens + fake.stats.tokens - 2000)
    await g.app.close()
    await fake.close()
  }
  return { worst, perRequest }
}

async function cpu() {
  const fake = await startFakeModelServer({ answerTokens: 16 })
  const plain = await gateway([{ url: fake.url }], undefined)
  const limited = await gateway([{ url: fake.url }], '1000000000 per day')
  const body = { model: 'fake-model', messages: [{ role: 'user', content: 'hello there' }], stream: true }
  const run = async (port, n) => {
    const start = process.cpuUsage()
    for (let i = 0; i < n; i += 16) await Promise.all(Array.from({ length: 16 }, () => post(port, body)))
    const used = process.cpuUsage(start)
    return (used.user + used.system) / n
  }
  await run(plain.port, 400)
  await run(limited.port, 400)
  const diffs = []
  for (let round = 0; round < ROUNDS; round++) {
    const a = await run(plain.port, REQUESTS)
    const b = await run(limited.port, REQUESTS)
    diffs.push({ plain: a, limited: b })
  }
  await plain.app.close()
  await limited.app.close()
  await fake.close()
  diffs.sort((x, y) => x.limited - x.plain - (y.limited - y.plain))
  return diffs[Math.floor(diffs.length / 2)]
}

const a = await accuracy()
const o = await overspend()
const c = await cpu()
agent.destroy()
const lines = [
  '',
  '<!-- suite:tokens -->',
  '## Token budgets',
  '',
  `_${new Date().toISOString()}, \`node bench/tokens.js --requests ${REQUESTS} --rounds ${ROUNDS}\`; gateway, fake backend and client in one process._`,
  '',
  '| measure | result |',
  '| --- | ---: |',
  `| charged ÷ real usage, ${REQUESTS} requests (JSON, stream, stream with include_usage; backend reports usage) | ${(a.charged / a.real).toFixed(4)} (${a.charged} / ${a.real}; paths: ${a.sources.join(', ')}) |`,
  `| estimate path: streamed tokens charged ÷ real, ${REQUESTS / 4} streams from a backend without usage | ${(a.estimated / a.bareReal).toFixed(3)} (${a.estimated} / ${a.bareReal}) |`,
  `| worst overspend, 200 concurrent requests against 2000 tokens, ${ROUNDS} rounds | ${o.worst} tokens (one request is ${o.perRequest}) |`,
  `| CPU per streamed forward, unlimited → token-limited (median round of ${ROUNDS}, client and backend included) | ${c.plain.toFixed(0)} → ${c.limited.toFixed(0)} µs (+${(c.limited - c.plain).toFixed(0)} µs) |`,
  '',
]
console.log(lines.join('\n'))
if (process.argv.includes('--append'))
  appendFileSync(new URL('./RESULTS.md', import.meta.url), lines.join('\n'))
