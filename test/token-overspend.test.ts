import http from 'node:http'
import { apiKeyKey } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import { type Framework, startExpress, startFastify } from './helpers/gateways.js'
import { Cleanup, fake } from './helpers/http.js'

/**
 * What a client that bends its requests really spends per window of a token budget: 200
 * concurrent workers against the fake model server, which reads each request as vLLM does.
 * The bound the gateway keeps: spent per window ≤ 1.1 × budget + one request's reservation.
 */
const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const BUDGET = 3000
const WINDOW_MS = 1000
const WINDOWS = 2
const WORKERS = 200

const TOOLS = Array.from({ length: 20 }, (_, i) => ({
  type: 'function',
  function: {
    name: `lookup_${i}`,
    description: 'Looks a record up by its identifier and returns every field it has.',
    parameters: { type: 'object', properties: { id: { type: 'string', description: 'the record id' } } },
  },
}))

/** Each variant, with what one request of it can cost (its reservation once read as vLLM does). */
const VARIANTS: [string, Record<string, unknown>, number][] = [
  ['n: 20', { n: 20, max_tokens: 100 }, 2000 + 2],
  ['max_completion_tokens: 0 with max_tokens: 500', { max_completion_tokens: 0, max_tokens: 500 }, 500 + 2],
  ['4 KB of tools', { tools: TOOLS, max_tokens: 10 }, 10 + 2 + Math.ceil(JSON.stringify(TOOLS).length / 4)],
  ['max_tokens: "5000"', { max_tokens: '5000' }, 0],
]

async function start(framework: Framework, backendUrl: string): Promise<number> {
  const options = {
    backends: [{ url: backendUrl }],
    keyGenerator: apiKeyKey,
    defaultTokens: `${BUDGET} per ${WINDOW_MS / 1000} second`,
  }
  if (framework === 'Fastify') {
    const { port } = await startFastify(cleanup, options as never, (app) => {
      app.post('/v1/chat/completions', app.tollgate.forward())
    })
    return port
  }
  const { port } = await startExpress(cleanup, options as never, (app, gate) => {
    app.post('/v1/chat/completions', gate.forward())
  })
  return port
}

async function spend(port: number, extra: Record<string, unknown>) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS })
  cleanup.add(() => agent.destroy(), null)
  const body = JSON.stringify({ model: 'fake-model', messages: [{ role: 'user', content: 'hi' }], ...extra })
  const post = () =>
    new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = http.request(
        {
          port,
          host: '127.0.0.1',
          method: 'POST',
          path: '/v1/chat/completions',
          agent,
          headers: { 'content-type': 'application/json', authorization: 'Bearer sk-overspend' },
        },
        (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }),
          )
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  const statuses = new Map<number, number>()
  let spent = 0
  const end = Date.now() + WINDOWS * WINDOW_MS
  const worker = async () => {
    while (Date.now() < end) {
      const answer = await post()
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
      if (answer.status === 200) spent += JSON.parse(answer.text).usage.total_tokens as number
      else await new Promise((r) => setTimeout(r, 20))
    }
  }
  await Promise.all(Array.from({ length: WORKERS }, worker))
  return { perWindow: spent / WINDOWS, statuses }
}

describe.each(['Fastify', 'Express'] as const)('token overspend through %s', (framework) => {
  it.each(VARIANTS)(
    '%s: spent per window stays within 1.1 × budget + one reservation',
    async (_name, extra, reservation) => {
      const backend = await fake(cleanup, { answerTokens: 100_000 })
      const port = await start(framework, backend.url)
      const { perWindow, statuses } = await spend(port, extra)
      expect(perWindow).toBeLessThanOrEqual(1.1 * BUDGET + reservation)
      if (reservation === 0) {
        // Read as vLLM reads it, "5000" would be 5000 tokens: refused instead of guessed.
        expect([...statuses.keys()]).toEqual([400])
      } else {
        expect(statuses.get(200)).toBeGreaterThan(0)
        expect(statuses.get(429)).toBeGreaterThan(0)
      }
    },
    20_000,
  )
})
