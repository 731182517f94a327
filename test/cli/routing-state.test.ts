import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import { afterEach, describe, expect, it } from 'vitest'
import { loadConfig } from '../../packages/cli/src/config/load-config.js'
import { Cleanup, chat, fake, send, waitFor } from '../helpers/http.js'
import { configFile, gatewayYaml, startCli } from './support.js'

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const ask = (port: number) => send(port, { path: '/v1/chat/completions', body: chat({ max_tokens: 2 }) })

function withCapacity(yaml: string, maxConcurrency: number): string {
  return yaml.replace('models: [fake-model] }', `models: [fake-model], maxConcurrency: ${maxConcurrency} }`)
}

describe('tollgate serve: routingState', () => {
  it('shares a backend’s maxConcurrency between gateways given the same redis, unless routingState is false', async () => {
    const a = await fake(cleanup, { name: 'a', timeToFirstTokenMs: 40 })
    const keyPrefix = `cli-routing-${randomUUID()}:`
    const extra = `redis: "\${REDIS_URL}"\nkeyPrefix: "${keyPrefix}"\n`
    const shared = configFile(withCapacity(gatewayYaml([{ url: a.url, id: 'a' }], extra), 1)).path
    const one = await startCli(cleanup, shared, { env: { REDIS_URL } })
    const two = await startCli(cleanup, shared, { env: { REDIS_URL } })
    await waitFor(() => one.gateway.ready && two.gateway.ready, 'Redis to be reached')
    // Both replicas share once their first heartbeat is answered: each is then in the replica set.
    const redis = new Redis(REDIS_URL)
    cleanup.add(() => redis.disconnect(), null)
    await waitFor(
      async () => (await redis.zcard(`${keyPrefix}{routing}:replicas`)) === 2,
      'both replicas sharing',
    )
    const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => ask(i % 2 ? one.port : two.port)))
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 200))
    expect(a.stats.maxConcurrent).toBe(1)

    const b = await fake(cleanup, { name: 'b', timeToFirstTokenMs: 40 })
    const alone = configFile(
      withCapacity(gatewayYaml([{ url: b.url, id: 'b' }], `${extra}routingState: false\n`), 1),
    ).path
    const three = await startCli(cleanup, alone, { env: { REDIS_URL } })
    const four = await startCli(cleanup, alone, { env: { REDIS_URL } })
    await Promise.all(Array.from({ length: 8 }, (_, i) => ask(i % 2 ? three.port : four.port)))
    expect(b.stats.maxConcurrent).toBe(2)
  })

  it('reads routingState as the top-level redis, a URL, or { redis, … }, and refuses it without a Redis', () => {
    const yaml = (extra: string) => gatewayYaml([{ url: 'http://127.0.0.1:9', id: 'a' }], extra)
    const read = (extra: string) => loadConfig(configFile(yaml(extra)).path, {}).config.routingState
    expect(read('')).toBeUndefined()
    expect(read('redis: redis://10.0.0.1:6379\n')).toEqual({ url: 'redis://10.0.0.1:6379' })
    expect(read('redis: redis://10.0.0.1:6379\nroutingState: false\n')).toBeUndefined()
    expect(read('routingState: redis://10.0.0.2:6379\n')).toEqual({ url: 'redis://10.0.0.2:6379' })
    expect(
      read(
        'redis: redis://10.0.0.1:6379\nroutingState: { redis: "redis://10.0.0.2:6379", leaseTtlMs: 3000 }\n',
      ),
    ).toEqual({ url: 'redis://10.0.0.2:6379', leaseTtlMs: 3000 })
    expect(read('redis: redis://10.0.0.1:6379\nroutingState: { timeoutMs: 50 }\n')).toEqual({
      url: 'redis://10.0.0.1:6379',
      timeoutMs: 50,
    })
    expect(() => read('routingState: true\n')).toThrow(/routingState needs a Redis/)
    expect(() => read('routingState: { redis: "http://10.0.0.2" }\n')).toThrow(/routingState/)
    expect(() => read('routingState: { leaseTtl: 5 }\n')).toThrow(/routingState/)
  })
})
