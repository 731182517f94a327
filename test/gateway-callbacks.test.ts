import http from 'node:http'
import type { PickerFunction } from '@tollgate/core'
import { ForwardingGateway, UserCallbacks } from '@tollgate/core/internal'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, closeServer } from './helpers/cleanup.js'
import { type Framework, recordingLogger, startExpress, startFastify } from './helpers/gateways.js'
import { chat, fake, send } from './helpers/http.js'
import { listen } from './helpers/ports.js'

// A user's strategy or onUnexpectedError that throws, or returns a rejected promise, must neither
// end the process (an unhandled rejection would) nor leave the client without an answer.

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

async function gatewayWith(
  framework: Framework,
  strategy: PickerFunction,
  logger: { warn(m: string): void },
) {
  const backend = await fake(cleanup)
  const options = { backends: [{ url: backend.url }], strategy, logger }
  if (framework === 'Fastify') {
    return (
      await startFastify(cleanup, options, (app) => {
        app.post('/v1/chat/completions', app.tollgate.forward())
      })
    ).port
  }
  return (
    await startExpress(cleanup, options, (app, gate) => {
      app.post('/v1/chat/completions', gate.forward())
    })
  ).port
}

describe.each(['Fastify', 'Express'] as const)('%s: a failing custom strategy', (framework) => {
  it.each([
    [
      'throws',
      () => {
        throw new Error('strategy bug')
      },
    ],
    [
      'returns a rejected promise',
      (async () => {
        throw new Error('strategy bug')
      }) as unknown as PickerFunction,
    ],
  ])('that %s gets 503 JSON, is logged once, and the gateway keeps serving', async (_how, strategy) => {
    const { warnings, logger } = recordingLogger()
    const port = await gatewayWith(framework, strategy as PickerFunction, logger)
    for (let i = 0; i < 3; i++) {
      const answer = await send(port, { path: '/v1/chat/completions', body: chat() })
      expect(answer.status).toBe(503)
      expect(answer.json().error.code).toBe('no_backend_available')
    }
    // Lets a rejected promise surface as an unhandled rejection, which fails the run.
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(warnings.filter((w) => w.includes('strategy'))).toHaveLength(1)
  })
})

describe('onUnexpectedError', () => {
  it('that returns a rejected promise is logged once and the client still gets its 500', async () => {
    const backend = await fake(cleanup)
    const { warnings, logger } = recordingLogger()
    let calls = 0
    const gateway = new ForwardingGateway(
      {
        backends: [{ url: backend.url }],
        onUnexpectedError: async () => {
          calls++
          throw new Error('logging bug')
        },
      },
      new UserCallbacks(logger),
    )
    cleanup.add(() => gateway.close(), null)
    // What onUnexpectedError exists for: the balancer failing in a way it never should.
    gateway.balancer.acquire = () => {
      throw new Error('balancer bug')
    }
    const server = http.createServer((req, res) => void gateway.forwarder.forward({ req, res }))
    const port = await listen(server)
    cleanup.add(() => closeServer(server), null)
    for (let i = 0; i < 2; i++) {
      const answer = await send(port, { path: '/v1/chat/completions', body: chat() })
      expect(answer.status).toBe(500)
      expect(answer.json().error.code).toBe('internal_error')
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
    expect(calls).toBe(2)
    expect(warnings).toEqual([expect.stringContaining('logging bug')])
  })
})
