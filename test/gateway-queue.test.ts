import type { BackendsHandle } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup } from './helpers/cleanup.js'
import { startExpress, startFastify } from './helpers/gateways.js'
import { type Answer, chat, fake, send } from './helpers/http.js'
import { waitFor } from './helpers/wait.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

async function start(framework: 'Fastify' | 'Express'): Promise<{ port: number; backends: BackendsHandle }> {
  // Slow enough that the first request still holds the only slot while the others arrive.
  const backend = await fake(cleanup, { timeToFirstTokenMs: 1_000 })
  const options = { backends: [{ url: backend.url, id: 'gpu', maxConcurrency: 1 }], queue: { size: 1 } }
  if (framework === 'Fastify') {
    const { app, port } = await startFastify(cleanup, options, (app) => {
      app.post('/v1/chat/completions', app.tollgate.forward())
    })
    return { port, backends: app.tollgate.backends }
  }
  const { gate, port } = await startExpress(cleanup, options, (app, gate) => {
    app.post('/v1/chat/completions', gate.forward())
  })
  return { port, backends: gate.backends }
}

describe.each(['Fastify', 'Express'] as const)('%s: the wait queue of a full backend', (framework) => {
  it('counts as queued only the requests that wait, not the ones a full queue turns away', async () => {
    const { port, backends } = await start(framework)
    const ask = (): Promise<Answer> => send(port, { path: '/v1/chat/completions', body: chat() })
    const queued = () => backends.get('gpu')?.queued ?? -1
    const running = ask()
    await waitFor(() => backends.get('gpu')?.inFlight === 1, 'the first request to hold the slot')
    const waiting = ask()
    await waitFor(() => queued() === 1, 'the second request to wait')
    const turnedAway = await Promise.all(Array.from({ length: 7 }, ask))
    expect(turnedAway.map((answer) => answer.json().error.code)).toEqual(Array(7).fill('queue_full'))
    expect(queued()).toBe(1)
    expect((await running).status).toBe(200)
    expect((await waiting).status).toBe(200)
    expect(queued()).toBe(0)
  })
})
