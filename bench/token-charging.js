#!/usr/bin/env node
/**
 * What a token budget charges when a request does not simply succeed, through both adapters:
 * clients that leave a JSON answer under way, retries into an empty token budget (what they do to
 * the request window), simultaneous requests that each ask for ~100 tokens against a 300-token
 * budget (how many the reservation admits), and how long a sweep of a million ended token
 * windows holds the event loop.
 *
 *   node bench/token-charging.js        (after npm run build)
 */
import http from 'node:http'
import { apiKeyKey, MemoryTokenStore } from '@tollgate/core'
import { tollgate as expressTollgate } from '@tollgate/express'
import fastifyTollgate from '@tollgate/fastify'
import express from 'express'
import Fastify from 'fastify'
import { startFakeModelServer } from '../examples/fake-model-server.js'
import { postChat } from './lib/chat-client.js'

const chat = (extra) =>
  JSON.stringify({ model: 'fake-model', messages: [{ role: 'user', content: 'hi' }], ...extra })

/** A fresh connection each; a socket error (a request cut on purpose) counts as status 0. */
function post(port, body, onRequest) {
  return postChat(port, body, { headers: { authorization: 'Bearer sk-bench' }, onRequest }).catch(() => ({
    status: 0,
  }))
}

/** A gateway of `framework` in front of `backend`, with `rateLimit` on its one forward route. */
async function gateway(framework, backend, rateLimit) {
  const settled = []
  const options = {
    backends: [{ url: backend.url }],
    keyGenerator: apiKeyKey,
    onTokensSettled: (_req, reservation) => settled.push(reservation),
  }
  if (framework === 'Fastify') {
    const app = Fastify()
    await app.register(fastifyTollgate, options)
    app.post('/v1/chat/completions', { config: { rateLimit } }, app.tollgate.forward())
    await app.listen({ port: 0, host: '127.0.0.1' })
    return { port: app.server.address().port, settled, close: () => app.close() }
  }
  const gate = expressTollgate(options)
  const app = express()
  app.post('/v1/chat/completions', gate.limit(rateLimit), gate.forward())
  const server = http.createServer(app)
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: server.address().port,
    settled,
    close: async () => {
      await gate.close()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function abandoned(framework) {
  const backend = await startFakeModelServer({ answerTokens: 400, timePerTokenMs: 5 })
  const gw = await gateway(framework, backend, { tokens: '10000000 per minute' })
  for (let i = 0; i < 20; i++)
    post(gw.port, chat({ max_tokens: 400 }), (req) => setTimeout(() => req.destroy(), 900))
  await sleep(2_000)
  const charged = gw.settled.reduce((sum, r) => sum + r.charged, 0)
  const sources = [...new Set(gw.settled.map((r) => r.source))].join(', ')
  console.log(
    `${framework}: 20 clients leave 400-token JSON answers at 900 ms: backend generated ` +
      `${backend.stats.tokens + backend.stats.promptTokens} tokens, charged ${charged} (${sources})`,
  )
  await gw.close()
  await backend.close()
}

async function retries(framework) {
  const backend = await startFakeModelServer({ answerTokens: 150 })
  const gw = await gateway(framework, backend, { limits: '7 per minute', tokens: '100 per minute' })
  const remaining = (answer) => /"7-per-minute";r=(\d+)/.exec(String(answer.headers.ratelimit))?.[1]
  const first = await post(gw.port, chat({ max_tokens: 150 }))
  const seen = []
  for (let i = 0; i < 9; i++) {
    const answer = await post(gw.port, chat({ max_tokens: 150 }))
    seen.push(`${answer.status}/${JSON.parse(answer.text).error?.type}`)
  }
  const after = remaining(await post(gw.port, chat({ max_tokens: 150 })))
  console.log(
    `${framework}: 7-per-minute window after the first request r=${remaining(first)}; 9 retries into an ` +
      `empty token budget: ${[...new Set(seen)].join(', ')}; a tenth retry still sees r=${after} ` +
      '(itself counted while its tokens are checked, then given back)',
  )
  await gw.close()
  await backend.close()
}

async function admitted(framework) {
  const backend = await startFakeModelServer({ answerTokens: 90, timeToFirstTokenMs: 400 })
  const gw = await gateway(framework, backend, { tokens: '300 per minute' })
  const answers = await Promise.all(Array.from({ length: 20 }, () => post(gw.port, chat({ max_tokens: 95 }))))
  await sleep(100)
  console.log(
    `${framework}: 20 simultaneous requests of ~100 tokens against 300: ` +
      `${answers.filter((a) => a.status === 200).length} admitted, reserving ` +
      gw.settled.map((r) => r.reserved).join(' + '),
  )
  await gw.close()
  await backend.close()
}

function sweep() {
  const clock = { now: 1_000_000 }
  const windows = [{ id: 'bench', amount: 100, windowMs: 1_000 }]
  const fill = () => {
    const store = new MemoryTokenStore({ now: () => clock.now, sweepIntervalMs: 3_600_000 })
    for (let i = 0; i < 1_000_000; i++) store.reserve(`c${i}`, windows, 5)
    clock.now += 2_000
    return store
  }
  let store = fill()
  let start = performance.now()
  store.sweep()
  const onePass = performance.now() - start
  store.close()
  store = fill()
  const steps = []
  for (let done = false; !done; ) {
    start = performance.now()
    done = store.sweepStep()
    steps.push(performance.now() - start)
  }
  store.close()
  steps.sort((a, b) => a - b)
  console.log(
    `MemoryTokenStore, 1 000 000 ended windows: one pass ${onePass.toFixed(0)} ms; in ${steps.length} steps ` +
      `of 5 000: median ${steps[steps.length >> 1].toFixed(1)} ms, longest ${steps.at(-1).toFixed(1)} ms`,
  )
}

for (const framework of ['Fastify', 'Express']) {
  await abandoned(framework)
  await retries(framework)
  await admitted(framework)
}
sweep()
