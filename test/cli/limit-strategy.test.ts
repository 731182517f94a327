import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { checkConfigFile } from '../../packages/cli/src/index.js'
import { Cleanup, chat, fake, send, waitFor } from '../helpers/http.js'
import { configFile, gatewayYaml, startCli } from './support.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const ask = (port: number) => send(port, { path: '/v1/chat/completions', body: chat() })

// One rule for every limitStrategy: the memory store and the Redis store count by all three, so
// `check`, `serve` without Redis and `serve` with Redis accept the same files.
describe('limitStrategy from a gateway file', () => {
  for (const strategy of ['moving-window', 'sliding-window-counter']) {
    it(`${strategy}: check accepts it with and without redis`, async () => {
      const url = 'http://127.0.0.1:9'
      const plain = gatewayYaml(
        [{ url, id: 'a' }],
        `limitStrategy: ${strategy}\ndefaultLimits: 2 per minute\n`,
      )
      await expect(checkConfigFile(configFile(plain).path, {})).resolves.toBeDefined()
      const shared = `redis: "\${REDIS_URL}"\n${plain}`
      await expect(checkConfigFile(configFile(shared).path, { REDIS_URL })).resolves.toBeDefined()
    })

    it(`${strategy}: serve counts by it without redis and with redis`, async () => {
      const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
      const extra = `limitStrategy: ${strategy}\ndefaultLimits: 2 per minute\n`
      const memory = await startCli(cleanup, configFile(gatewayYaml([{ url: a.url, id: 'a' }], extra)).path)
      const redisYaml = gatewayYaml(
        [{ url: a.url, id: 'a' }],
        `redis: "\${REDIS_URL}"\nkeyPrefix: "cli-strategy-${randomUUID()}:"\n${extra}`,
      )
      const redis = await startCli(cleanup, configFile(redisYaml).path, { env: { REDIS_URL } })
      await waitFor(() => redis.gateway.ready, 'Redis to be reached')
      for (const { port } of [memory, redis]) {
        expect((await ask(port)).status).toBe(200)
        expect((await ask(port)).status).toBe(200)
        expect((await ask(port)).status).toBe(429)
      }
    })
  }
})
