import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base'
import type { TollgateExpressOptions } from '@tollgate/express'
import { Registry } from 'prom-client'
import { afterEach, describe, expect, it } from 'vitest'
import { type Framework, startExpress, startFastify } from './helpers/gateways.js'
import { abortable, Cleanup, chat, fake, send, waitFor } from './helpers/http.js'
import { sampleValue, scrape } from './helpers/metrics-text.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

/** A gateway on either adapter: chat forwarded and limited to 3 per minute, /metrics mounted. */
async function start(framework: Framework, options: TollgateExpressOptions): Promise<number> {
  if (framework === 'Fastify') {
    const { port } = await startFastify(cleanup, options as never, (app) => {
      app.post('/v1/chat/completions', { config: { rateLimit: '3 per minute' } }, app.tollgate.forward())
      if (options.metrics) app.get('/metrics', { config: { rateLimit: false } }, app.tollgate.metrics())
    })
    return port
  }
  const { port } = await startExpress(cleanup, options, (app, gate) => {
    app.post('/v1/chat/completions', gate.limit('3 per minute'), gate.forward())
    if (options.metrics) app.get('/metrics', gate.metrics())
  })
  return port
}

const METRICS = [
  'tollgate_requests_total',
  'tollgate_requests_in_flight',
  'tollgate_attempts_total',
  'tollgate_retries_total',
  'tollgate_limit_decisions_total',
  'tollgate_backend_status',
  'tollgate_backend_in_flight',
  'tollgate_queue_length',
  'tollgate_backend_ejections_total',
  'gen_ai_server_time_to_first_token_seconds_count',
  'gen_ai_server_time_per_output_token_seconds_count',
  'gen_ai_server_request_duration_seconds_count',
]

describe.each(['Fastify', 'Express'] as const)('%s: metrics, traces and logs', (framework) => {
  it('counts requests by backend, model and status, streams for TTFT and TPOT, and limit decisions', async () => {
    const backend = await fake(cleanup)
    const port = await start(framework, {
      backends: [{ url: backend.url, id: 'fake-a', models: ['fake-model'] }],
      metrics: true,
    })
    const path = '/v1/chat/completions'
    expect((await send(port, { path, body: chat() })).status).toBe(200)
    expect((await send(port, { path, body: chat({ stream: true }) })).status).toBe(200)
    // A model no backend declares is labelled `other`, so clients cannot mint label values.
    expect((await send(port, { path, body: chat({ model: 'made-up-by-a-client' }) })).status).toBe(404)
    expect((await send(port, { path, body: chat() })).status).toBe(429)

    const samples = await scrape(port, '/metrics', METRICS)
    const ok = { backend: 'fake-a', model: 'fake-model', status: '200' }
    expect(sampleValue(samples, 'tollgate_requests_total', ok)).toBe(2)
    expect(
      sampleValue(samples, 'tollgate_requests_total', { backend: 'none', model: 'other', status: '404' }),
    ).toBe(1)
    expect(sampleValue(samples, 'tollgate_requests_in_flight')).toBe(0)
    expect(sampleValue(samples, 'tollgate_attempts_total', { backend: 'fake-a', outcome: 'ok' })).toBe(2)
    const streamed = { backend: 'fake-a', model: 'fake-model' }
    expect(sampleValue(samples, 'gen_ai_server_time_to_first_token_seconds_count', streamed)).toBe(1)
    expect(sampleValue(samples, 'gen_ai_server_time_per_output_token_seconds_count', streamed)).toBe(1)
    expect(sampleValue(samples, 'gen_ai_server_request_duration_seconds_count', ok)).toBe(2)
    const decisions = samples.filter((s) => s.name === 'tollgate_limit_decisions_total')
    expect(decisions.map((s) => [s.labels.policy, s.labels.decision, s.value]).sort()).toEqual([
      ['3-per-minute', 'allowed', 3],
      ['3-per-minute', 'rejected', 1],
    ])
    expect(sampleValue(samples, 'tollgate_backend_status', { backend: 'fake-a', status: 'healthy' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_backend_status', { backend: 'fake-a', status: 'ejected' })).toBe(0)
    expect(sampleValue(samples, 'tollgate_backend_in_flight', { backend: 'fake-a' })).toBe(0)
    expect(sampleValue(samples, 'tollgate_queue_length')).toBe(0)
  })

  it('counts retries and ejections, and logs the ejection and an access line per request', async () => {
    const broken = await fake(cleanup)
    broken.setFailureMode('error-503')
    const good = await fake(cleanup)
    const lines: string[] = []
    const logger = {
      warn: (m: string) => lines.push(`warn ${m}`),
      info: (m: string) => lines.push(`info ${m}`),
    }
    const registry = new Registry()
    const port = await start(framework, {
      backends: [
        { url: broken.url, id: 'broken' },
        { url: good.url, id: 'good' },
      ],
      strategy: 'round-robin',
      health: { outlier: { consecutiveFailures: 1, maxEjectionPercent: 50 } },
      metrics: { registry },
      accessLog: true,
      logger,
    })
    for (let i = 0; i < 2; i++)
      expect((await send(port, { path: '/v1/chat/completions?key=secret', body: chat() })).status).toBe(200)
    const samples = await scrape(port, '/metrics', METRICS)
    expect(sampleValue(samples, 'tollgate_attempts_total', { backend: 'broken', outcome: 'failed' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_retries_total', { backend: 'good' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_backend_ejections_total', { backend: 'broken' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_backend_status', { backend: 'broken', status: 'ejected' })).toBe(1)
    // The registry passed in is the one the metrics are in.
    expect(await registry.metrics()).toContain('tollgate_backend_ejections_total{backend="broken"} 1')
    expect(lines.filter((l) => l.startsWith('warn') && l.includes('"broken" ejected'))).toHaveLength(1)
    const access = lines.filter((l) => l.includes('POST "/v1/chat/completions"'))
    expect(access).toHaveLength(2)
    expect(access.join('\n')).not.toContain('secret')
    expect(access.some((l) => l.includes('backend="good" attempts=2 status=200'))).toBe(true)
  })

  it('logs a backend back in rotation when its ejection ends', async () => {
    const broken = await fake(cleanup)
    broken.setFailureMode('error-503')
    const good = await fake(cleanup)
    const lines: string[] = []
    const logger = {
      warn: (m: string) => lines.push(`warn ${m}`),
      info: (m: string) => lines.push(`info ${m}`),
    }
    const port = await start(framework, {
      backends: [
        { url: broken.url, id: 'broken' },
        { url: good.url, id: 'good' },
      ],
      health: { outlier: { consecutiveFailures: 1, baseEjectionMs: 50 } },
      logger,
    })
    for (let i = 0; i < 2; i++) await send(port, { path: '/v1/chat/completions', body: chat() })
    expect(lines.some((l) => l.startsWith('warn') && l.includes('"broken" ejected'))).toBe(true)
    await waitFor(
      () => lines.some((l) => l === 'info tollgate: backend "broken" is back in rotation after its ejection'),
      'the restore line',
    )
  })

  it('reports the usage a token-budget route reads as token counts', async () => {
    const backend = await fake(cleanup, { answerTokens: 12 })
    const options = {
      backends: [{ url: backend.url, id: 'fake-a', models: ['fake-model'] }],
      metrics: true,
    }
    const tokens = '10000 per minute'
    let port: number
    if (framework === 'Fastify') {
      ;({ port } = await startFastify(cleanup, options as never, (app) => {
        app.post('/v1/chat/completions', { config: { rateLimit: { tokens } } }, app.tollgate.forward())
        app.get('/metrics', { config: { rateLimit: false } }, app.tollgate.metrics())
      }))
    } else {
      ;({ port } = await startExpress(cleanup, options, (app, gate) => {
        app.post('/v1/chat/completions', gate.limit({ tokens }), gate.forward())
        app.get('/metrics', gate.metrics())
      }))
    }
    const answer = await send(port, { path: '/v1/chat/completions', body: chat({ max_tokens: 50 }) })
    expect(answer.status).toBe(200)
    const usage = answer.json().usage
    expect(usage.completion_tokens).toBe(12)
    // A stream without include_usage: the gateway asks for it, reads it, and counts it too.
    const streamed = await send(port, { path: '/v1/chat/completions', body: chat({ stream: true }) })
    expect(streamed.status).toBe(200)

    // The GenAI conventions' current names: usage counters by modality, per-request histograms.
    const usageIn = 'gen_ai_client_inference_usage_input_tokens_total'
    const usageOut = 'gen_ai_client_inference_usage_output_tokens_total'
    const perIn = 'gen_ai_client_inference_operation_input_tokens'
    const perOut = 'gen_ai_client_inference_operation_output_tokens'
    const samples = await scrape(port, '/metrics', [
      usageIn,
      usageOut,
      `${perIn}_count`,
      `${perIn}_sum`,
      `${perOut}_count`,
      `${perOut}_sum`,
      'gen_ai_client_token_usage_count',
    ])
    const labels = { backend: 'fake-a', model: 'fake-model' }
    const modality = { ...labels, gen_ai_token_modality: 'unknown' }
    expect(sampleValue(samples, usageOut, modality)).toBe(24)
    expect(sampleValue(samples, usageIn, modality)).toBe(2 * usage.prompt_tokens)
    expect(sampleValue(samples, `${perIn}_count`, labels)).toBe(2)
    expect(sampleValue(samples, `${perOut}_count`, labels)).toBe(2)
    expect(sampleValue(samples, `${perOut}_sum`, labels)).toBe(24)
    expect(sampleValue(samples, `${perIn}_sum`, labels)).toBe(2 * usage.prompt_tokens)
    // The names the conventions retired are gone.
    expect(samples.some((s) => s.name.startsWith('gen_ai_client_token_usage'))).toBe(false)
  })

  it('shows load-report age and staleness per backend, and traffic and spill per zone', async () => {
    const local = await fake(cleanup, { name: 'local', timePerTokenMs: 20, answerTokens: 200 })
    const remote = await fake(cleanup, { name: 'remote' })
    const port = await start(framework, {
      backends: [
        { url: local.url, id: 'local', zone: 'a', maxConcurrency: 1, metrics: 'vllm' },
        { url: remote.url, id: 'remote', zone: 'b', metrics: { format: 'vllm', path: '/no-metrics-here' } },
        { url: remote.url, id: 'plain', zone: 'c', weight: 1 },
      ],
      zone: 'a',
      zonePreference: ['b'],
      loadReports: { intervalMs: 200, timeoutMs: 200 },
      metrics: true,
    })
    const names = [
      'tollgate_backend_report_age_seconds',
      'tollgate_backend_report_stale',
      'tollgate_zone_requests_total',
      'tollgate_zone_spilled_requests_total',
      'tollgate_zone_available_backends',
    ]
    // The long answer holds the local backend's one slot, so the next request spills to zone b.
    const { abort } = abortable(port, { body: chat() })
    cleanup.add(() => abort(), null)
    await waitFor(() => local.stats.requests >= 1, 'the long request at the local backend')
    const spilled = await send(port, { path: '/v1/chat/completions', body: chat() })
    expect(spilled.headers['x-backend']).toBe('remote')

    await waitFor(async () => {
      const samples = await scrape(port, '/metrics', names)
      return sampleValue(samples, 'tollgate_backend_report_stale', { backend: 'local' }) === 0
    }, "the local backend's first report")
    const samples = await scrape(port, '/metrics', names)
    const age = sampleValue(samples, 'tollgate_backend_report_age_seconds', { backend: 'local' })
    expect(age).toBeGreaterThanOrEqual(0)
    expect(age).toBeLessThan(60)
    // A backend whose exporter cannot be read is stale and has no age; one without `metrics` has neither.
    expect(sampleValue(samples, 'tollgate_backend_report_stale', { backend: 'remote' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_backend_report_age_seconds', { backend: 'remote' })).toBeUndefined()
    expect(sampleValue(samples, 'tollgate_backend_report_stale', { backend: 'plain' })).toBeUndefined()

    expect(sampleValue(samples, 'tollgate_zone_requests_total', { zone: 'a' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_zone_spilled_requests_total', { zone: 'a' })).toBe(0)
    expect(sampleValue(samples, 'tollgate_zone_requests_total', { zone: 'b' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_zone_spilled_requests_total', { zone: 'b' })).toBe(1)
    expect(sampleValue(samples, 'tollgate_zone_requests_total', { zone: 'c' })).toBe(0)
    expect(sampleValue(samples, 'tollgate_zone_available_backends', { zone: 'c' })).toBe(1)
    const text = (await send(port, { path: '/metrics' })).body.toString()
    expect(text).toContain('# TYPE tollgate_zone_requests_total counter')
    expect(text).toContain('# TYPE tollgate_zone_spilled_requests_total counter')
  })

  it('traces one span per request and one per attempt, with GenAI attributes', async () => {
    const exporter = new InMemorySpanExporter()
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })
    const backend = await fake(cleanup)
    const port = await start(framework, {
      backends: [{ url: backend.url, id: 'fake-a', models: ['fake-model'] }],
      tracing: { tracer: provider.getTracer('test') },
    })
    expect((await send(port, { path: '/v1/chat/completions', body: chat({ stream: true }) })).status).toBe(
      200,
    )
    await waitFor(() => exporter.getFinishedSpans().length === 2, 'both spans')
    const [attempt, request] = exporter.getFinishedSpans()
    expect(request!.name).toBe('chat fake-model')
    expect(request!.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.request.model': 'fake-model',
      'http.response.status_code': 200,
    })
    expect(attempt!.name).toBe('attempt fake-a')
    expect(attempt!.parentSpanContext?.spanId).toBe(request!.spanContext().spanId)
    expect(attempt!.attributes).toMatchObject({
      'server.address': '127.0.0.1',
      'server.port': backend.port,
      'tollgate.attempt': 1,
      'http.response.status_code': 200,
    })
  })
})
