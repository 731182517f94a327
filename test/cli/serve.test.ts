import { afterEach, describe, expect, it } from 'vitest'
import { Cleanup, chat, fake, openStream, send, waitFor } from '../helpers/http.js'
import { sampleValue, scrape } from '../helpers/metrics-text.js'
import { configFile, gatewayYaml, startCli } from './support.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

const ask = (port: number) => send(port, { path: '/v1/chat/completions', body: chat() })

describe('tollgate serve', () => {
  it('serves the routes, limits, probes and status JSON the file describes', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 3 })
    const file = configFile(
      gatewayYaml([{ url: a.url, id: 'a' }], 'defaultLimits: 2 per minute\nstatus: { path: /gateway }\n'),
    )
    const { port } = await startCli(cleanup, file.path)
    const first = await ask(port)
    expect(first.status).toBe(200)
    expect(first.headers['x-backend']).toBe('a')
    expect(first.headers['ratelimit-policy']).toMatch(/"2-per-minute";q=2;w=60/)
    expect((await ask(port)).status).toBe(200)
    expect((await ask(port)).status).toBe(429)

    const models = await send(port, { path: '/v1/models' })
    expect(models.json().data.map((m: { id: string }) => m.id)).toEqual(['fake-model'])
    expect((await send(port, { path: '/livez' })).status).toBe(200)
    expect((await send(port, { path: '/readyz' })).json()).toEqual({ status: 'ready' })

    const status = (await send(port, { path: '/gateway/status.json' })).json()
    expect(status.backends).toMatchObject([{ id: 'a', status: 'healthy', inFlight: 0, totalRequests: 2 }])
    expect(status.routes).toMatchObject([
      {
        method: 'POST',
        path: '/v1/chat/completions',
        limits: '2 per minute',
        totalRequests: 3,
        limited: 1,
        tokenLimited: 0,
      },
      { method: 'GET', path: '/v1/models', limits: 'none', totalRequests: 1, limited: 0 },
    ])
    expect(status.backends[0]).toMatchObject({ state: 'ok', problems: [] })
    expect(status.backends[0].rate).toBeGreaterThan(0)
    expect(status.backends[0].requests.reduce((a: number, b: number) => a + b, 0)).toBe(2)
    const page = await send(port, { path: '/gateway' })
    expect(page.headers['content-type']).toMatch(/text\/html/)
  })

  it('accessLog: one line per request; backendHeader names the backend; the start line says where to look', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
    const file = configFile(
      gatewayYaml(
        [{ url: a.url, id: 'a' }],
        'accessLog: true\nbackendHeader: x-tollgate-backend\nstatus: { path: /gateway }\nmetrics: { path: /metrics }\n',
      ),
    )
    const { port, logs } = await startCli(cleanup, file.path)
    const start = logs.messages().find((m) => m.includes('listening on')) ?? ''
    expect(start).toMatch(/2 routes \(POST \/v1\/chat\/completions, GET \/v1\/models\); 1 backend/)
    expect(start).toMatch(
      /status page http:\/\/127\.0\.0\.1:\d+\/gateway; metrics http:\/\/127\.0\.0\.1:\d+\/metrics/,
    )
    expect(start).toMatch(/probes http:\/\/127\.0\.0\.1:\d+\/livez http:\/\/127\.0\.0\.1:\d+\/readyz/)

    const before = logs.records.length
    const answer = await ask(port)
    expect(answer.headers['x-tollgate-backend']).toBe('a')
    await waitFor(() => logs.records.length > before, 'the access line')
    await new Promise((resolve) => setTimeout(resolve, 50))
    expect(logs.messages().slice(before)).toEqual([
      expect.stringMatching(
        /^tollgate: POST "\/v1\/chat\/completions" model="fake-model" backend="a" attempts=1 status=200 /,
      ),
    ])
  })

  it('warns at start about a file that serves nothing', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
    const file = configFile(
      `listen: { host: 127.0.0.1, port: 0 }\nbackends:\n  - { url: "${a.url}", id: a }\n`,
    )
    const { logs } = await startCli(cleanup, file.path)
    expect(logs.records.find((r) => r.msg.includes('serves nothing'))).toMatchObject({
      level: 40,
      msg: expect.stringMatching(/gateway\.yaml:\d+:\d+: serves nothing: 1 backend but no routes/),
    })
  })

  it('reloads backends and limits while a stream is in flight, which finishes on the old config', async () => {
    const slow = await fake(cleanup, { name: 'slow', answerTokens: 20, timePerTokenMs: 25 })
    const next = await fake(cleanup, { name: 'next', answerTokens: 3 })
    const file = configFile(gatewayYaml([{ url: slow.url, id: 'slow' }], 'defaultLimits: 5 per minute\n'))
    const { gateway, port, logs } = await startCli(cleanup, file.path)

    const stream = await openStream(port, { body: chat({ stream: true }) })
    expect(stream.headers['x-backend']).toBe('slow')
    await stream.nextEvent()

    file.write(gatewayYaml([{ url: next.url, id: 'next', weight: 3 }], 'defaultLimits: 3 per minute\n'))
    expect(await gateway.reload()).toBe(true)
    const after = await ask(port)
    expect(after.headers['x-backend']).toBe('next')
    expect(after.headers['ratelimit-policy']).toMatch(/"3-per-minute";q=3/)

    const events = await stream.rest()
    expect(stream.complete).toBe(true)
    expect(events.at(-1)).toBe('data: [DONE]')
    expect(logs.messages()).toContain(`tollgate: reloaded ${file.path}`)
  })

  it('keeps every client count across a reload', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
    const b = await fake(cleanup, { name: 'b', answerTokens: 1 })
    const file = configFile(gatewayYaml([{ url: a.url, id: 'a' }], 'defaultLimits: 2 per minute\n'))
    const { gateway, port } = await startCli(cleanup, file.path)
    expect((await ask(port)).status).toBe(200)
    expect((await ask(port)).status).toBe(200)
    file.write(gatewayYaml([{ url: b.url, id: 'b' }], 'defaultLimits: 2 per minute\n'))
    expect(await gateway.reload()).toBe(true)
    expect((await ask(port)).status).toBe(429)
  })

  it('keeps every token budget across a reload, as the request counts', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 50 })
    const b = await fake(cleanup, { name: 'b', answerTokens: 50 })
    const file = configFile(gatewayYaml([{ url: a.url, id: 'a' }], 'defaultTokens: 40 per minute\n'))
    const { gateway, port } = await startCli(cleanup, file.path)
    // 50 generated tokens: the 40-token budget is spent by the first answer.
    expect((await ask(port)).status).toBe(200)
    expect((await ask(port)).status).toBe(429)
    file.write(gatewayYaml([{ url: b.url, id: 'b' }], 'defaultTokens: 40 per minute\n'))
    expect(await gateway.reload()).toBe(true)
    const after = await ask(port)
    expect(after.status).toBe(429)
    expect(after.json().error.type).toBe('tokens')
  })

  it('refuses an invalid new file, logs why, and keeps the running config', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
    const file = configFile(gatewayYaml([{ url: a.url, id: 'a' }]))
    const { gateway, port, logs } = await startCli(cleanup, file.path)
    file.write(gatewayYaml([{ url: 'ftp://nowhere', id: 'b' }]))
    expect(await gateway.reload()).toBe(false)
    expect(logs.records.filter((r) => r.level >= 50).map((r) => r.msg)).toEqual([
      expect.stringMatching(
        /refused the new config, the running one stays: gateway\.yaml:3:\d+: backends\[0\]\.url must be/,
      ),
    ])
    file.write(gatewayYaml([{ url: a.url, id: 'a' }], 'defaultLimits: 1 per fortnight\n'))
    expect(await gateway.reload()).toBe(false)
    const answer = await ask(port)
    expect(answer.status).toBe(200)
    expect(answer.headers['x-backend']).toBe('a')
  })

  it('reloads by itself when the file changes', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
    const b = await fake(cleanup, { name: 'b', answerTokens: 1 })
    const file = configFile(gatewayYaml([{ url: a.url, id: 'a' }]))
    const { port, logs } = await startCli(cleanup, file.path, { watch: true })
    file.write(gatewayYaml([{ url: b.url, id: 'b' }]))
    await waitFor(() => logs.messages().some((m) => m.startsWith('tollgate: reloaded')), 'the reload')
    expect((await ask(port)).headers['x-backend']).toBe('b')
  })

  it('refuses a reload that changes listen, which needs a restart', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 1 })
    const file = configFile(gatewayYaml([{ url: a.url, id: 'a' }]))
    const { gateway, logs } = await startCli(cleanup, file.path)
    file.write(gatewayYaml([{ url: a.url, id: 'a' }]).replace('port: 0', 'port: 1234'))
    expect(await gateway.reload()).toBe(false)
    expect(logs.messages().at(-1)).toMatch(/"listen" changed; that takes a restart/)
  })
})

describe('tollgate serve: metrics', () => {
  it('serves Prometheus metrics at metrics.path, outside the limits', async () => {
    const a = await fake(cleanup, { name: 'a', answerTokens: 3 })
    const file = configFile(
      gatewayYaml([{ url: a.url, id: 'a' }], 'defaultLimits: 1 per minute\nmetrics: { path: /metrics }\n'),
    )
    const { port } = await startCli(cleanup, file.path)
    expect((await ask(port)).status).toBe(200)
    expect((await ask(port)).status).toBe(429)
    const names = ['tollgate_requests_total', 'tollgate_limit_decisions_total', 'tollgate_backend_status']
    // Scraped twice: the metrics route itself is not limited.
    await scrape(port, '/metrics', names)
    const samples = await scrape(port, '/metrics', names)
    expect(sampleValue(samples, 'tollgate_requests_total', { backend: 'a', status: '200' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_limit_decisions_total', { decision: 'rejected' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_backend_status', { backend: 'a', status: 'healthy' })).toBe(1)
  })
})
