import type { BackendSnapshot } from '@tollgate/core'
import { afterEach, describe, expect, it } from 'vitest'
import type { FakeModelServer } from '../examples/fake-model-server.js'
import { type Answer, abortable, Cleanup, chat, countBy, fake, send, waitFor } from './helpers/http.js'
import { metricsSwitch, ROUTING_GATEWAYS } from './helpers/routing-gateways.js'

const cleanup = new Cleanup()
afterEach(() => cleanup.run())

// A scrape that times out turns the report stale, which is what it should do but not what these
// tests look at: the timeout is generous for a machine busy with other tests.
const LOAD_REPORTS = { intervalMs: 200, timeoutMs: 200 }

/** Long answers sent straight to the backend: load this gateway cannot see, as from another replica. */
function loadDirectly(backend: FakeModelServer, requests: number): void {
  for (let i = 0; i < requests; i++) {
    const { abort } = abortable(backend.port, { body: chat({ max_tokens: 500 }) })
    cleanup.add(() => abort(), null)
  }
}

function ask(port: number): Promise<Answer> {
  return send(port, { path: '/v1/chat/completions', body: chat({ max_tokens: 2 }) })
}

async function sequential(port: number, n: number): Promise<Answer[]> {
  const answers: Answer[] = []
  for (let i = 0; i < n; i++) answers.push(await ask(port))
  return answers
}

function reportOf(snapshot: BackendSnapshot[], id: string) {
  return snapshot.find((s) => s.id === id)?.loadReport
}

describe.each(ROUTING_GATEWAYS)('%s: load reported by the backends', (_name, start) => {
  it('least-load moves away from a server loaded by traffic it did not send, and shows the report', async () => {
    const busy = await fake(cleanup, { name: 'busy', capacity: 1, timePerTokenMs: 20, answerTokens: 500 })
    const idle = await fake(cleanup, { name: 'idle', capacity: 1, timePerTokenMs: 1, answerTokens: 500 })
    const { port, backends } = await start(cleanup, {
      backends: [
        { id: 'busy', url: busy.url, metrics: 'vllm' },
        { id: 'idle', url: idle.url, metrics: { format: 'vllm', path: '/metrics' } },
      ],
      strategy: 'least-load',
      loadReports: LOAD_REPORTS,
    })
    loadDirectly(busy, 4)
    await waitFor(
      () => reportOf(backends.snapshot(), 'busy')?.waiting === 3,
      'the busy server to report its queue',
    )
    const answers = await sequential(port, 6)
    expect(countBy(answers)).toEqual({ idle: 6 })
    const report = reportOf(backends.snapshot(), 'busy')
    expect(report).toMatchObject({ format: 'vllm', waiting: 3, running: 1, stale: false, lastError: null })
    expect(report?.ageMs).toBeGreaterThanOrEqual(0)
    expect(report?.ageMs).toBeLessThan(10_000)
    expect(report?.kvUsage).toBeGreaterThan(0)
  })

  it('a failing scrape makes the report stale: the backend is judged by the local estimate again, not as saturated', async () => {
    const busy = await fake(cleanup, { name: 'busy', capacity: 1, timePerTokenMs: 20, answerTokens: 500 })
    const other = await fake(cleanup, { name: 'other', answerTokens: 500 })
    const front = await metricsSwitch(cleanup, busy.url)
    const { port, backends } = await start(cleanup, {
      backends: [
        { id: 'busy', url: front.url, metrics: 'vllm' },
        { id: 'other', url: other.url, metrics: 'vllm' },
      ],
      strategy: 'least-load',
      loadReports: { ...LOAD_REPORTS, maxWaiting: 2 },
    })
    loadDirectly(busy, 4)
    await waitFor(
      () => reportOf(backends.snapshot(), 'busy')?.waiting === 3,
      'the busy server to report its queue',
    )
    expect(countBy(await sequential(port, 3))).toEqual({ other: 3 })

    front.breakMetrics(true)
    await waitFor(() => reportOf(backends.snapshot(), 'busy')?.stale === true, 'the report to turn stale')
    const report = reportOf(backends.snapshot(), 'busy')
    // The last report is still shown, with why it is no longer used.
    expect(report).toMatchObject({ waiting: 3, stale: true, lastError: 'HTTP 500' })
    expect(report?.failures).toBeGreaterThan(0)
    // Never tried by this gateway, the busy server is worth probing under the local estimate.
    // (Its answer waits behind the long ones, so the test only sees it arrive.)
    for (let i = 0; i < 2; i++) {
      const { abort } = abortable(port, { body: chat({ max_tokens: 2 }) })
      cleanup.add(() => abort(), null)
    }
    await waitFor(() => busy.stats.requests > 4, 'a request from the gateway at the busy server')

    front.breakMetrics(false)
    await waitFor(
      () => reportOf(backends.snapshot(), 'busy')?.stale === false,
      'the report to be fresh again',
    )
    expect(countBy(await sequential(port, 3))).toEqual({ other: 3 })
  })

  it('a backend reporting a full queue is avoided with any strategy, and a scrape that cannot connect never saturates', async () => {
    const busy = await fake(cleanup, { name: 'busy', capacity: 1, timePerTokenMs: 20, answerTokens: 500 })
    const other = await fake(cleanup, { name: 'other', answerTokens: 500 })
    const { port, backends } = await start(cleanup, {
      backends: [
        { id: 'busy', url: busy.url, metrics: 'vllm' },
        { id: 'other', url: other.url, metrics: { format: 'vllm', path: '/no-metrics-here' } },
      ],
      strategy: 'round-robin',
      loadReports: { ...LOAD_REPORTS, maxWaiting: 2 },
    })
    loadDirectly(busy, 4)
    await waitFor(
      () => reportOf(backends.snapshot(), 'busy')?.waiting === 3,
      'the busy server to report its queue',
    )
    expect(countBy(await sequential(port, 4))).toEqual({ other: 4 })
    expect(reportOf(backends.snapshot(), 'other')).toMatchObject({ stale: true, lastError: 'HTTP 404' })
  })

  it('scrapes backends added at runtime, stops for removed ones and on close', async () => {
    const a = await fake(cleanup, { name: 'a' })
    const b = await fake(cleanup, { name: 'b' })
    const { backends } = await start(cleanup, {
      backends: [{ id: 'a', url: a.url }],
      strategy: 'least-load',
      loadReports: LOAD_REPORTS,
    })
    expect(backends.get('a')?.loadReport).toBeNull()
    const added = backends.add({ id: 'b', url: b.url, metrics: 'vllm' })
    expect(added.loadReport).toMatchObject({ format: 'vllm', stale: true })
    await waitFor(() => b.stats.metricsRequests >= 2, 'scrapes of the added backend')
    await waitFor(() => backends.get('b')?.loadReport?.stale === false, 'a fresh report')
    expect(a.stats.metricsRequests).toBe(0)
    backends.remove('b')
    const after = b.stats.metricsRequests
    await new Promise((resolve) => setTimeout(resolve, 600))
    expect(b.stats.metricsRequests).toBeLessThanOrEqual(after + 1)
  })
})
