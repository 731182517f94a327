import { randomUUID } from 'node:crypto'
import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, chat, closedPort, fake, send, waitFor } from '../helpers/http.js'
import { configFile, gatewayYaml, startCli } from './support.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const ask = (port: number) => send(port, { path: '/v1/chat/completions', body: chat() })

describe('tollgate serve with redis', () => {
  it('is ready once Redis answered, and two gateways share their limits through it', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
    const yaml = gatewayYaml(
      [{ url: a.url, id: 'a' }],
      `redis: "\${REDIS_URL}"\nkeyPrefix: "cli-test-${randomUUID()}:"\ndefaultLimits: 3 per minute\n`,
    )
    const one = await startCli(cleanup, configFile(yaml).path, { env: { REDIS_URL } })
    const two = await startCli(cleanup, configFile(yaml).path, { env: { REDIS_URL } })
    await waitFor(() => one.gateway.ready && two.gateway.ready, 'Redis to be reached')
    expect((await send(one.port, { path: '/readyz' })).status).toBe(200)

    expect((await ask(one.port)).status).toBe(200)
    expect((await ask(two.port)).status).toBe(200)
    expect((await ask(one.port)).status).toBe(200)
    expect((await ask(two.port)).status).toBe(429)
  })

  it('is not ready while Redis was never reached, and still answers requests', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
    const closed = await closedPort()
    const yaml = gatewayYaml([{ url: a.url, id: 'a' }], `redis: redis://127.0.0.1:${closed}\n`)
    const { port, logs } = await startCli(cleanup, configFile(yaml).path)
    // The first try's error names the cause; until then the check says Redis was not reached yet.
    await waitFor(() => logs.messages().some((m) => m.includes('Redis unreachable')), 'the warning')
    expect(logs.records.find((r) => r.msg.includes('Redis unreachable'))).toMatchObject({
      level: 40,
      msg: expect.stringContaining(`connection refused 127.0.0.1:${closed}`),
    })
    const ready = await send(port, { path: '/readyz' })
    expect(ready.status).toBe(503)
    expect(ready.json()).toEqual({
      status: 'not ready',
      failing: [`redis: connection refused 127.0.0.1:${closed}`],
    })
    expect((await send(port, { path: '/livez' })).json()).toEqual({ status: 'live' })
    expect((await send(port, { path: '/livez' })).status).toBe(200)
    expect((await ask(port)).status).toBe(200)
  })
})
