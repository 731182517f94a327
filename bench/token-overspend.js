#!/usr/bin/env node
/**
 * Token overspend: what a client that bends its requests really spends per window of a token
 * budget. 200 concurrent workers send one request variant each in a loop against a Fastify
 * gateway (tokens: 3000 per 2 s) in front of the fake model server, which reads the request as
 * vLLM does (`n`, `max_completion_tokens or max_tokens`, "5000" read as 5000, tools in the
 * prompt). Spent is what the backend reported in `usage` for every answer it gave.
 *
 *   node bench/token-overspend.js [--windows 4] [--workers 200]
 *
 * The bound the gateway keeps: spent per window ≤ 1.1 × budget + one request's reservation.
 */
import http from 'node:http'
import { apiKeyKey } from '@tollgate/core'
import fastifyTollgate from '@tollgate/fastify'
import Fastify from 'fastify'
import { startFakeModelServer } from '../examples/fake-model-server.js'

const args = process.argv.slice(2)
const option = (name, fallback) => {
  const at = args.indexOf(`--${name}`)
  return at === -1 ? fallback : Number(args[at + 1])
}
const WINDOWS = option('windows', 4)
const WORKERS = option('workers', 200)
const BUDGET = 3000
const WINDOW_MS = 2000

const tool = (i) => ({
  type: 'function',
  function: {
    name: `lookup_${i}`,
    description: 'Looks a record up by its identifier and returns every field it has.',
    parameters: { type: 'object', properties: { id: { type: 'string', description: 'the record id' } } },
  },
})
const TOOLS = Array.from({ length: 20 }, (_, i) => tool(i))

export const VARIANTS = [
  { name: 'n: 20, max_tokens: 100', extra: { n: 20, max_tokens: 100 } },
  {
    name: 'max_completion_tokens: 0 + max_tokens: 500',
    extra: { max_completion_tokens: 0, max_tokens: 500 },
  },
  {
    name: `${JSON.stringify(TOOLS).length} B of tools, max_tokens: 10`,
    extra: { tools: TOOLS, max_tokens: 10 },
  },
  { name: 'max_tokens: "5000"', extra: { max_tokens: '5000' } },
]

const agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS })

function post(port, body, key) {
  return new Promise((resolve) => {
    const req = http.request(
      {
        port,
        host: '127.0.0.1',
        method: 'POST',
        path: '/v1/chat/completions',
        agent,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }))
      },
    )
    req.on('error', () => resolve({ status: 0, text: '' }))
    req.end(JSON.stringify(body))
  })
}

/** Spent tokens (backend usage) per window, and the answers by status, for one variant. */
export async function measure(
  port,
  variant,
  { windows = WINDOWS, workers = WORKERS, key = 'sk-overspend' } = {},
) {
  const body = { model: 'fake-model', messages: [{ role: 'user', content: 'hi' }], ...variant.extra }
  const statuses = {}
  let spent = 0
  const end = Date.now() + windows * WINDOW_MS
  const worker = async () => {
    while (Date.now() < end) {
      const answer = await post(port, body, key)
      statuses[answer.status] = (statuses[answer.status] ?? 0) + 1
      if (answer.status === 200) spent += JSON.parse(answer.text).usage.total_tokens
      else await new Promise((r) => setTimeout(r, 20))
    }
  }
  await Promise.all(Array.from({ length: workers }, worker))
  return { perWindow: spent / windows, statuses }
}

export async function startGateway(backendUrl, tokens = `${BUDGET} per ${WINDOW_MS / 1000} seconds`) {
  const app = Fastify({ logger: false })
  await app.register(fastifyTollgate, { backends: [{ url: backendUrl }], keyGenerator: apiKeyKey })
  app.post('/v1/chat/completions', { config: { rateLimit: { tokens } } }, app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: app.server.address().port }
}

async function main() {
  const backend = await startFakeModelServer({ answerTokens: 100_000, timeToFirstTokenMs: 20 })
  const { app, port } = await startGateway(backend.url)
  console.log(`budget ${BUDGET} tokens per ${WINDOW_MS} ms, ${WORKERS} workers, ${WINDOWS} windows\n`)
  console.log('| variant | spent per window | × budget | answers |')
  console.log('|---|---:|---:|---|')
  for (const [i, variant] of VARIANTS.entries()) {
    const { perWindow, statuses } = await measure(port, variant, { key: `sk-overspend-${i}` })
    const answers = Object.entries(statuses)
      .map(([s, n]) => `${n}× ${s}`)
      .join(', ')
    console.log(
      `| ${variant.name} | ${Math.round(perWindow)} | ${(perWindow / BUDGET).toFixed(2)} | ${answers} |`,
    )
  }
  agent.destroy()
  await app.close()
  await backend.close()
}

if (process.argv[1] === new URL(import.meta.url).pathname) await main()
