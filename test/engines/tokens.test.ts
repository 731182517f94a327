// Token budgets against a real llama-server: what a request is charged is what the server itself
// counted for it (prompt tokens, processed or reused from its cache, plus generated tokens).
import type { TokenReservation } from '@tollgate/core'
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { Cleanup } from '../helpers/cleanup.js'
import { send } from '../helpers/http.js'
import { waitFor } from '../helpers/wait.js'
import { type EngineGateway, startEngineGateway } from './engine-gateways.js'
import {
  describeWithEngine,
  engineOrSkip,
  type LlamaServer,
  startLlamaServer,
  tokensCounted,
} from './llama-servers.js'

const engine = engineOrSkip()
const servers = new Cleanup()
let llama: LlamaServer

beforeAll(async () => {
  if (engine !== null) llama = await startLlamaServer(servers, engine)
}, 60_000)
afterAll(() => servers.run())

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const AUTH = { authorization: 'Bearer sk-engine-tokens' }
const messages = [{ role: 'user', content: 'Count the tokens of this request, prompt and answer.' }]

/** Sends one request and returns its answer with its settled reservation and the server's own count. */
async function charged(gateway: EngineGateway, path: string, body: object) {
  const before = await tokensCounted(llama)
  const settledBefore = gateway.settled.length
  const answer = await send(gateway.port, { path, headers: AUTH, body })
  await waitFor(() => gateway.settled.length > settledBefore, 'the reservation settled')
  const reservation = gateway.settled.at(-1) as TokenReservation
  // The server updates its counters when the task ends, which may be just after the last byte.
  let counted = 0
  await waitFor(
    async () => {
      counted = (await tokensCounted(llama)) - before
      return counted === reservation.charged
    },
    'the server to count what the gateway charged',
    2_000,
  ).catch(() => {})
  return { answer, reservation, counted }
}

describeWithEngine(engine).each(['Fastify', 'Express'] as const)(
  'token budgets on llama-server through %s',
  (framework) => {
    const gateway = () =>
      startEngineGateway(cleanup, framework, {
        options: { backends: [{ url: llama.url }] },
        tokens: '1000000 per minute',
      })

    it('charges a JSON chat completion what the server counted', async () => {
      const gw = await gateway()
      const { answer, reservation, counted } = await charged(gw, '/v1/chat/completions', {
        messages,
        max_tokens: 16,
      })
      expect(answer.status).toBe(200)
      const usage = answer.json().usage
      expect(reservation.source).toBe('usage')
      expect(reservation.charged).toBe(usage.prompt_tokens + usage.completion_tokens)
      expect(reservation.charged).toBe(counted)
    })

    it('charges a stream that did not ask for usage what the server counted, and hides the usage', async () => {
      const gw = await gateway()
      const { answer, reservation, counted } = await charged(gw, '/v1/chat/completions', {
        messages,
        max_tokens: 16,
        stream: true,
      })
      expect(answer.status).toBe(200)
      expect(answer.text()).not.toContain('"usage"')
      expect(answer.text().endsWith('data: [DONE]\n\n')).toBe(true)
      expect(reservation.source).toBe('usage')
      expect(reservation.charged).toBe(counted)
    })

    it("charges llama.cpp's native /completion its tokens_evaluated plus tokens_predicted", async () => {
      const gw = await gateway()
      const { answer, reservation, counted } = await charged(gw, '/completion', {
        prompt: 'Count the tokens of this request, prompt and answer.',
        n_predict: 16,
      })
      expect(answer.status).toBe(200)
      const body = answer.json()
      expect(reservation.charged).toBe(body.tokens_evaluated + body.tokens_predicted)
      expect(reservation.charged).toBe(counted)
    })
  },
)
