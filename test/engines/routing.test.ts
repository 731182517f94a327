// Routing against real llama-servers: their /metrics as the gateway reads them, least-load
// following what they report, failover when one dies, and their habit of closing a connection after
// every streamed response.

import { afterAll, afterEach, beforeAll, expect, it } from 'vitest'
import { startFakeModelServer } from '../../examples/fake-model-server.js'
import { ENGINE_METRICS, toLoadReport } from '../../packages/core/src/balance/load-reports/engines.js'
import { Cleanup } from '../helpers/cleanup.js'
import { openStream, send } from '../helpers/http.js'
import { waitFor } from '../helpers/wait.js'
import { type EngineGateway, startEngineGateway } from './engine-gateways.js'
import {
  describeWithEngine,
  engineOrSkip,
  type LlamaServer,
  llamaMetrics,
  startLlamaServer,
} from './llama-servers.js'

const engine = engineOrSkip()
const servers = new Cleanup()
let a: LlamaServer
let b: LlamaServer

beforeAll(async () => {
  if (engine === null) return
  ;[a, b] = await Promise.all([startLlamaServer(servers, engine), startLlamaServer(servers, engine)])
}, 60_000)
afterAll(() => servers.run())

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const short = (extra: Record<string, unknown> = {}) => ({
  messages: [{ role: 'user', content: 'Route me.' }],
  max_tokens: 4,
  ...extra,
})

function snapshot(gateway: EngineGateway, id: string) {
  const found = gateway.backends.snapshot().find((backend) => backend.id === id)
  if (found === undefined) throw new Error(`no backend ${id}`)
  return found
}

/** Long streamed generations sent straight to `server`, filling its slots; cut by `cleanup`. */
function occupy(server: LlamaServer, requests: number): void {
  for (let i = 0; i < requests; i++) {
    const controller = new AbortController()
    cleanup.add(() => controller.abort(), null)
    fetch(`${server.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(short({ max_tokens: 3000, stream: true, ignore_eos: true })),
      signal: controller.signal,
    })
      .then(async (answer) => {
        for await (const _ of answer.body ?? []) {
          // read and dropped, so the server keeps generating
        }
      })
      .catch(() => {})
  }
}

describeWithEngine(engine)('llama-server metrics', () => {
  it('exports the names the llamacpp load reader reads, and the fake exports the same series', async () => {
    const text = await (await fetch(`${a.url}/metrics`)).text()
    const real = await llamaMetrics(a)
    expect(real.has(ENGINE_METRICS.llamacpp.waiting)).toBe(true)
    expect(real.has(ENGINE_METRICS.llamacpp.running)).toBe(true)
    expect(toLoadReport('llamacpp', text, 0)).toMatchObject({ waiting: 0, running: 0, kvUsage: undefined })

    const fake = await startFakeModelServer({ metricsFormat: 'llamacpp' })
    cleanup.add(() => fake.close(), null)
    const fakeText = await (await fetch(`${fake.url}/metrics`)).text()
    const names = (t: string) => t.split('\n').filter((line) => line !== '' && !line.startsWith('#'))
    const fakeNames = names(fakeText).map((line) => line.split(' ')[0])
    expect(fakeNames).toEqual([...real.keys()])
    const helpAndType = (t: string) => t.split('\n').filter((line) => line.startsWith('#'))
    expect(helpAndType(fakeText)).toEqual(helpAndType(text))
  })
})

describeWithEngine(engine).each(['Fastify', 'Express'] as const)('llama-servers behind %s', (framework) => {
  it('least-load follows what the servers report', async () => {
    const gateway = await startEngineGateway(cleanup, framework, {
      options: {
        strategy: 'least-load',
        loadReports: { intervalMs: 100 },
        backends: [
          { id: 'a', url: a.url, metrics: 'llamacpp' },
          { id: 'b', url: b.url, metrics: 'llamacpp' },
        ],
      },
    })
    // Both of a's slots busy and one request deferred, by clients the gateway never saw.
    occupy(a, 3)
    await waitFor(
      () =>
        snapshot(gateway, 'a').loadReport?.running === 2 && snapshot(gateway, 'a').loadReport?.waiting === 1,
      "a's report of 2 running and 1 deferred",
      10_000,
    )
    for (let i = 0; i < 5; i++) {
      expect((await send(gateway.port, { path: '/v1/chat/completions', body: short() })).status).toBe(200)
    }
    expect(snapshot(gateway, 'a').totalRequests).toBe(0)
    expect(snapshot(gateway, 'b').totalRequests).toBe(5)
    await cleanup.run()
  })

  it('fails over when a server is killed, and a stream cut by the kill is visibly cut', async () => {
    const [c, d] = await Promise.all([startLlamaServer(cleanup, engine!), startLlamaServer(cleanup, engine!)])
    const gateway = await startEngineGateway(cleanup, framework, {
      options: {
        backends: [
          { id: 'c', url: c.url },
          { id: 'd', url: d.url },
        ],
      },
    })
    const cut = await openStream(gateway.port, {
      body: short({ max_tokens: 400, ignore_eos: true, stream: true }),
    })
    expect(cut.status).toBe(200)
    // Tokens are flowing: the response is committed to the server that sends them.
    expect(await cut.nextEvent()).toContain('"choices"')
    const streaming = gateway.backends.snapshot().find((backend) => backend.inFlight === 1)!.id
    await (streaming === 'c' ? c : d).kill()
    const events = await cut.rest()
    expect(events.at(-1)).toContain('event: error')
    expect(events.join('\n')).not.toContain('[DONE]')

    const answers = []
    for (let i = 0; i < 4; i++)
      answers.push(await send(gateway.port, { path: '/v1/chat/completions', body: short() }))
    expect(answers.map((x) => x.status)).toEqual([200, 200, 200, 200])
    const alive = streaming === 'c' ? 'd' : 'c'
    expect(snapshot(gateway, alive).totalErrors).toBe(0)
  })

  it('keeps a server that closes connections after streams free of errors, serving every request', async () => {
    const gateway = await startEngineGateway(cleanup, framework, {
      options: { backends: [{ id: 'a', url: a.url }] },
    })
    const statuses: number[] = []
    for (let i = 0; i < 20; i++) {
      const streamed = await send(gateway.port, {
        path: '/v1/chat/completions',
        body: short({ stream: true }),
      })
      const plain = await send(gateway.port, { path: '/v1/chat/completions', body: short() })
      statuses.push(streamed.status, plain.status)
    }
    expect(statuses.every((status) => status === 200)).toBe(true)
    expect(snapshot(gateway, 'a')).toMatchObject({
      totalRequests: 40,
      totalErrors: 0,
      consecutiveFailures: 0,
    })
  })
})
