import tollgate, { type BackendConfig, type StrategyName } from '@tollgate/fastify'
import Fastify from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import type { FakeModelServer, FakeModelServerOptions } from '../examples/fake-model-server.js'
import { type Answer, Cleanup, chat, countBy, fake, portOf, send } from './helpers/http.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

interface Setup {
  port: number
  fakes: FakeModelServer[]
}

/** Three fake backends named a, b, c behind a Fastify gateway using `strategy`. */
async function threeBackends(
  strategy: StrategyName,
  fakeOptions: FakeModelServerOptions[] = [{}, {}, {}],
  configs: Partial<BackendConfig>[] = [{}, {}, {}],
): Promise<Setup> {
  const fakes: FakeModelServer[] = []
  for (const [i, name] of ['a', 'b', 'c'].entries()) {
    fakes.push(await fake(cleanup, { name, answerTokens: 2, ...fakeOptions[i] }))
  }
  const app = Fastify()
  cleanup.add(() => app.close(), null)
  await app.register(tollgate, {
    backends: fakes.map((f, i) => ({ url: f.url, id: f.name, ...configs[i] })),
    strategy,
  })
  app.post('/v1/chat/completions', app.tollgate.forward())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { port: portOf(app.server), fakes }
}

function ask(port: number, headers: Record<string, string> = {}): Promise<Answer> {
  return send(port, {
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(chat()),
  })
}

async function sequential(port: number, n: number, headers?: Record<string, string>): Promise<Answer[]> {
  const answers: Answer[] = []
  for (let i = 0; i < n; i++) answers.push(await ask(port, headers))
  return answers
}

/** `total` requests from `workers` clients, each sending its next one as soon as the last is answered. */
async function concurrent(port: number, total: number, workers: number): Promise<Answer[]> {
  const answers: Answer[] = []
  let left = total
  await Promise.all(
    Array.from({ length: workers }, async () => {
      while (left > 0) {
        left--
        answers.push(await ask(port))
      }
    }),
  )
  return answers
}

function expectAllOk(answers: Answer[]): void {
  expect(answers.filter((a) => a.status !== 200).map((a) => a.status)).toEqual([])
}

describe('strategies, through a gateway in front of three backends', () => {
  it('round-robin splits evenly', async () => {
    const { port } = await threeBackends('round-robin')
    const answers = await sequential(port, 30)
    expectAllOk(answers)
    expect(countBy(answers)).toEqual({ a: 10, b: 10, c: 10 })
  })

  it('weighted round-robin gives a weight-3 backend three times the share of a weight-1 one', async () => {
    const { port } = await threeBackends('round-robin', undefined, [
      { weight: 3 },
      { weight: 1 },
      { weight: 1 },
    ])
    const answers = await sequential(port, 25)
    expectAllOk(answers)
    expect(countBy(answers)).toEqual({ a: 15, b: 5, c: 5 })
  })

  it('random follows the weights within tolerance', async () => {
    const { port } = await threeBackends('random', undefined, [{ weight: 3 }, { weight: 1 }, { weight: 1 }])
    const total = 250
    const answers = await concurrent(port, total, 10)
    expectAllOk(answers)
    const counts = countBy(answers)
    // Expected shares 0.6 / 0.2 / 0.2; the bounds sit more than four standard deviations out.
    expect(counts.a! / total).toBeGreaterThan(0.45)
    expect(counts.a! / total).toBeLessThan(0.75)
    for (const name of ['b', 'c']) {
      expect(counts[name]! / total).toBeGreaterThan(0.08)
      expect(counts[name]! / total).toBeLessThan(0.32)
    }
  })

  it('power-of-two spreads an even load over every backend', async () => {
    const { port } = await threeBackends('power-of-two')
    const answers = await concurrent(port, 90, 3)
    expectAllOk(answers)
    const counts = countBy(answers)
    for (const name of ['a', 'b', 'c']) expect(counts[name]).toBeGreaterThanOrEqual(10)
  })

  // One backend takes 300 ms to its first token, the others answer at once: a load-aware strategy
  // sees its requests pile up (or its latency) and sends it clearly less than an even third.
  it.each(['least-connections', 'least-latency', 'power-of-two'] as const)(
    '%s moves load off a slow backend',
    async (strategy) => {
      const { port, fakes } = await threeBackends(strategy, [{ timeToFirstTokenMs: 300 }, {}, {}])
      const total = 48
      const answers = await concurrent(port, total, 6)
      expectAllOk(answers)
      const counts = countBy(answers)
      const slow = counts.a ?? 0
      expect(slow).toBeLessThanOrEqual(total / 6)
      expect(counts.b).toBeGreaterThan(slow * 2)
      expect(counts.c).toBeGreaterThan(slow * 2)
      expect(fakes[0]!.stats.requests).toBe(slow)
    },
  )

  it('consistent-hash keeps each session on one backend', async () => {
    const { port } = await threeBackends('consistent-hash')
    const homes = new Map<string, string>()
    for (let s = 0; s < 12; s++) {
      const session = `session-${s}`
      const answers = await sequential(port, 4, { 'x-session-id': session })
      expectAllOk(answers)
      const counts = countBy(answers)
      expect(Object.keys(counts)).toHaveLength(1)
      homes.set(session, Object.keys(counts)[0]!)
    }
    // Twelve sessions do not all hash to one backend.
    expect(new Set(homes.values()).size).toBeGreaterThanOrEqual(2)
    // And they come back to the same place later.
    for (const [session, home] of homes) {
      expect((await ask(port, { 'x-session-id': session })).headers['x-backend']).toBe(home)
    }
  })

  it('consistent-hash spills a session over to other backends when its own is overloaded', async () => {
    const slowish = { timeToFirstTokenMs: 200 }
    const { port } = await threeBackends('consistent-hash', [slowish, slowish, slowish])
    const session = { 'x-session-id': 'busy-conversation' }
    const home = (await ask(port, session)).headers['x-backend'] as string
    const burst = await Promise.all(Array.from({ length: 9 }, () => ask(port, session)))
    expectAllOk(burst)
    const counts = countBy(burst)
    // Bounded loads: nine at once cannot all go to one backend...
    expect(Object.keys(counts).length).toBeGreaterThan(1)
    expect(counts[home]).toBeLessThan(9)
    // ...but the session's own backend still takes the largest share.
    for (const n of Object.values(counts)) expect(counts[home]).toBeGreaterThanOrEqual(n)
    // Once the burst is over, the session is back home.
    expect((await ask(port, session)).headers['x-backend']).toBe(home)
  })

  it('consistent-hash spills over when the home backend is at its maxConcurrency', async () => {
    const slowish = { timeToFirstTokenMs: 200 }
    const { port } = await threeBackends(
      'consistent-hash',
      [slowish, slowish, slowish],
      [{ maxConcurrency: 1 }, { maxConcurrency: 1 }, { maxConcurrency: 1 }],
    )
    const session = { 'x-session-id': 'another-conversation' }
    const home = (await ask(port, session)).headers['x-backend'] as string
    const burst = await Promise.all(Array.from({ length: 3 }, () => ask(port, session)))
    expectAllOk(burst)
    expect(countBy(burst)).toEqual({ a: 1, b: 1, c: 1 })
    expect((await ask(port, session)).headers['x-backend']).toBe(home)
  })
})
