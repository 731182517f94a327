import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, fake, send } from '../helpers/http.js'
import { FRAMEWORKS, startGateway } from './gateways.js'

// A user function that throws on the forward path gets the client a 500 JSON answer, and the
// gateway goes on serving.

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const quiet = { warn: () => {}, error: () => {}, info: () => {}, debug: () => {} }

const broken = () => {
  throw new Error('broken user function')
}

const cases = [
  ['a route hashKey function', {}, { hashKey: broken }],
  ['a gateway hashKey function', { strategy: 'consistent-hash', hashKey: broken }, {}],
  ['a rewrite function', {}, { rewrite: broken }],
] as const

for (const framework of FRAMEWORKS) {
  describe(`${framework}: user functions that throw on the forward path`, () => {
    for (const [what, options, forwardOptions] of cases) {
      it(`${what}: 500 JSON, and the next request is served`, async () => {
        const backend = await fake(cleanup)
        const logger = framework === 'Express' ? { logger: quiet } : {}
        const port = await startGateway(
          framework,
          cleanup,
          { backends: [{ url: backend.url }], ...logger, ...options },
          forwardOptions,
        )
        for (let i = 0; i < 2; i++) {
          const answer = await send(port, { path: '/v1/chat/completions', body: { model: 'fake-model' } })
          expect(answer.status).toBe(500)
          expect(answer.json().error.type).toBe('server_error')
        }
        expect(backend.stats.requests).toBe(0)
      })
    }
  })
}
