import { afterEach, describe, expect, it } from 'vitest'
import type { FakeModelServer } from '../examples/fake-model-server.js'
import { type Answer, abortable, Cleanup, chat, countBy, fake, send, waitFor } from './helpers/http.js'
import {
  ROUTING_GATEWAYS,
  type RoutingGateway,
  type StartRoutingGateway,
} from './helpers/routing-gateways.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

// Generous for a machine busy with other tests: a timed-out scrape turns the report stale.
const LOAD_REPORTS = { intervalMs: 100, timeoutMs: 100 }

/** A vLLM-like server with two adapters, room for both in one batch. */
function loraServer(name: string): Promise<FakeModelServer> {
  return fake(cleanup, {
    name,
    models: ['base'],
    loraAdapters: ['x', 'y'],
    maxLoras: 2,
    timePerTokenMs: 20,
    answerTokens: 500,
  })
}

/** A long answer for `adapter` sent straight to the server: traffic of another gateway replica. */
function busyWith(backend: FakeModelServer, adapter: string): void {
  const { abort } = abortable(backend.port, { body: chat({ model: adapter, max_tokens: 500 }) })
  cleanup.add(() => abort(), null)
}

async function sequential(port: number, model: string, n: number): Promise<Answer[]> {
  const answers: Answer[] = []
  for (let i = 0; i < n; i++)
    answers.push(await send(port, { path: '/v1/chat/completions', body: chat({ model, max_tokens: 2 }) }))
  return answers
}

/** Two servers, one running adapter x and the other y, behind a round-robin gateway. */
async function setUp(
  start: StartRoutingGateway,
  loraAffinity: boolean,
): Promise<{ a: FakeModelServer; b: FakeModelServer; gateway: RoutingGateway }> {
  const a = await loraServer('a')
  const b = await loraServer('b')
  busyWith(a, 'x')
  busyWith(b, 'y')
  // No backend declares models: the gateway reads `model` for LoRA affinity alone.
  const gateway = await start(cleanup, {
    backends: [
      { id: 'a', url: a.url, metrics: 'vllm' },
      { id: 'b', url: b.url, metrics: 'vllm' },
    ],
    strategy: 'round-robin',
    loadReports: LOAD_REPORTS,
    loraAffinity,
  })
  const lora = (id: string) => gateway.backends.get(id)?.loadReport?.lora?.running
  await waitFor(
    () => lora('a')?.includes('x') === true && lora('b')?.includes('y') === true,
    'both servers to report their running adapter',
  )
  return { a, b, gateway }
}

describe.each(ROUTING_GATEWAYS)('%s: LoRA affinity', (_name, start) => {
  it('sends requests for an adapter to the server that runs it, so no server loads it again', async () => {
    const { a, b, gateway } = await setUp(start, true)
    expect(gateway.backends.get('a')?.loadReport?.lora).toEqual({ running: ['x'], waiting: [], maxLora: 2 })
    expect(countBy(await sequential(gateway.port, 'x', 6))).toEqual({ a: 6 })
    expect(countBy(await sequential(gateway.port, 'y', 6))).toEqual({ b: 6 })
    // The base model is no adapter: round robin as usual.
    expect(countBy(await sequential(gateway.port, 'base', 4))).toEqual({ a: 2, b: 2 })
    expect([a.stats.loraLoads, b.stats.loraLoads]).toEqual([1, 1])
  })

  it('without it, round robin spreads them and each server loads both adapters', async () => {
    const { a, b, gateway } = await setUp(start, false)
    expect(countBy(await sequential(gateway.port, 'x', 6))).toEqual({ a: 3, b: 3 })
    expect([a.stats.loraLoads, b.stats.loraLoads]).toEqual([1, 2])
    await sequential(gateway.port, 'y', 2)
    expect([a.stats.loraLoads, b.stats.loraLoads]).toEqual([2, 2])
  })
})
