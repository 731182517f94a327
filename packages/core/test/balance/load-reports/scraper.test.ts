import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type FakeModelServer,
  type FakeModelServerOptions,
  startFakeModelServer,
} from '../../../../../examples/fake-model-server.js'
import {
  LoadReportScraper,
  type LoadReportScraperOptions,
} from '../../../src/balance/load-reports/scraper.js'
import { OptionError } from '../../../src/validation.js'
import { manualClock } from '../helpers.js'

const closers: (() => Promise<unknown>)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

async function fake(options: FakeModelServerOptions = {}): Promise<FakeModelServer> {
  const server = await startFakeModelServer(options)
  closers.push(() => server.close())
  return server
}

function scraper(options: LoadReportScraperOptions): LoadReportScraper {
  const s = new LoadReportScraper(options)
  closers.push(() => s.close())
  return s
}

const controllers: AbortController[] = []
afterEach(() => {
  for (const c of controllers.splice(0)) c.abort()
})

/** Starts an answer that runs until the test ends (or aborts it), holding a place in the batch. */
function hold(server: FakeModelServer, body: Record<string, unknown> = {}): AbortController {
  const controller = new AbortController()
  controllers.push(controller)
  fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'hi' }], stream: true, ...body }),
    signal: controller.signal,
  }).catch(() => {})
  return controller
}

async function waitFor(check: () => boolean, what: string): Promise<void> {
  const until = Date.now() + 5000
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** A TCP server that accepts and never answers, counting requests. */
async function silentServer(): Promise<{ url: string; requests: () => number }> {
  let requests = 0
  const server: Server = createServer(() => {
    requests++
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections()
        server.close(resolve)
      }),
  )
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`,
    requests: () => requests,
  }
}

const longAnswers = (_r: () => number, body: Record<string, unknown>) => (body.long ? 100_000 : 3)

describe('LoadReportScraper against the fake model server', () => {
  it.each(['vllm', 'sglang', 'tgi', 'llamacpp'] as const)(
    'reads queue, batch and KV usage from %s metrics',
    async (format) => {
      const server = await fake({
        metricsFormat: format,
        capacity: 1,
        kvCacheTokens: 64,
        timePerTokenMs: 1000,
        answerTokens: longAnswers,
      })
      const s = scraper({ url: `${server.url}/metrics`, format })
      await s.scrape()
      // TGI and llama-server report no KV-cache usage.
      const reportsKv = format !== 'tgi' && format !== 'llamacpp'
      expect(s.current()).toMatchObject({ waiting: 0, running: 0, kvUsage: reportsKv ? 0 : undefined })

      hold(server, { long: true, max_tokens: 31 }) // 32 tokens: 2 of 4 blocks
      await waitFor(() => server.stats.inFlight === 1, 'one answer running')
      hold(server)
      hold(server)
      await waitFor(() => server.stats.queued === 2, 'two waiting')
      await s.scrape()
      expect(s.current()).toMatchObject({
        waiting: 2,
        running: 1,
        kvUsage: reportsKv ? 0.5 : undefined,
      })
      expect(s.state).toMatchObject({ scrapes: 2, failures: 0, stale: false, lastError: undefined })
    },
  )

  it('reads the old vLLM name for KV usage', async () => {
    const server = await fake({ metricsFormat: 'vllm-v0' })
    const s = scraper({ url: `${server.url}/metrics`, format: 'vllm' })
    await s.scrape()
    expect(s.current()).toMatchObject({ waiting: 0, running: 0, kvUsage: 0 })
  })

  it('scrapes on its interval until closed', async () => {
    const server = await fake()
    const s = scraper({ url: `${server.url}/metrics`, format: 'vllm', intervalMs: 20 })
    s.start()
    s.start() // a second start changes nothing
    await waitFor(() => s.state.scrapes >= 3, 'three scrapes')
    await s.close()
    // A scrape that close() aborted may still be counted by the server when it gets there.
    await new Promise((resolve) => setTimeout(resolve, 30))
    const after = server.stats.requests
    await new Promise((resolve) => setTimeout(resolve, 60))
    expect(server.stats.requests).toBe(after)
  })

  it('goes stale once the report is older than staleAfterMs, and fresh again with the next scrape', async () => {
    const clock = manualClock()
    const server = await fake()
    const s = scraper({ url: `${server.url}/metrics`, format: 'vllm', staleAfterMs: 3000, now: clock.now })
    expect(s.state).toMatchObject({ report: undefined, stale: true })
    expect(s.current()).toBeUndefined()
    await s.scrape()
    clock.advance(3000)
    expect(s.state).toMatchObject({ stale: false, ageMs: 3000 })
    clock.advance(1)
    expect(s.state.stale).toBe(true)
    expect(s.current()).toBeUndefined()
    await s.scrape()
    expect(s.current()?.at).toBe(clock.now())
  })

  it('keeps the last report through a failing scrape but reads as stale, and recovers', async () => {
    const server = await fake()
    const s = scraper({ url: `${server.url}/metrics`, format: 'vllm' })
    await s.scrape()
    const report = s.current()
    server.setFailureMode('error-500')
    await s.scrape()
    await s.scrape()
    expect(s.state).toMatchObject({
      report,
      stale: true,
      failures: 2,
      consecutiveFailures: 2,
      lastError: 'HTTP 500',
    })
    expect(s.current()).toBeUndefined()
    server.setFailureMode('none')
    await s.scrape()
    expect(s.state).toMatchObject({ stale: false, consecutiveFailures: 0, failures: 2, lastError: undefined })
  })

  it('fails a scrape that is not answered within timeoutMs, with one scrape in flight at a time', async () => {
    const silent = await silentServer()
    const s = scraper({ url: silent.url, format: 'vllm', timeoutMs: 100, intervalMs: 1000 })
    const first = s.scrape()
    const second = s.scrape()
    expect(second).toBe(first)
    await first
    expect(silent.requests()).toBe(1)
    expect(s.state).toMatchObject({
      scrapes: 1,
      failures: 1,
      stale: true,
      lastError: 'timed out after 100 ms',
    })
  })

  it('fails on a refused connection, a wrong format and an oversized answer', async () => {
    const server = await fake({ metricsFormat: 'tgi' })
    const wrong = scraper({ url: `${server.url}/metrics`, format: 'vllm' })
    await wrong.scrape()
    expect(wrong.state.lastError).toBe('no vllm:num_requests_waiting in the metrics')

    const small = scraper({ url: `${server.url}/metrics`, format: 'tgi', maxBytes: 64 })
    await small.scrape()
    expect(small.state.lastError).toBe('the answer is larger than 64 bytes')

    const gone = await fake()
    const url = `${gone.url}/metrics`
    await gone.close()
    const refused = scraper({ url, format: 'vllm' })
    await refused.scrape()
    expect(refused.state.lastError).toMatch(/ECONNREFUSED/)
  })

  it('close() ends a scrape in flight without counting it as a failure', async () => {
    const silent = await silentServer()
    const s = new LoadReportScraper({ url: silent.url, format: 'vllm', timeoutMs: 1000, intervalMs: 1000 })
    const pending = s.scrape()
    await waitFor(() => silent.requests() === 1, 'the request to arrive')
    await s.close()
    await pending
    expect(s.state.failures).toBe(0)
    await s.scrape()
    expect(s.state.scrapes).toBe(1)
  })
})

describe('LoadReportScraper options', () => {
  it.each([
    [
      { url: 'ftp://x/metrics', format: 'vllm' },
      /"loadReports.url" must be an http: or https: URL; got "ftp:/,
    ],
    [{ url: 'http://x/metrics', format: 'ollama' }, /"loadReports.format" must be one of/],
    [
      { url: 'http://x/metrics', format: 'vllm', intervalMs: 0 },
      /"loadReports.intervalMs" must be an integer/,
    ],
    [
      { url: 'http://x/metrics', format: 'vllm', intervalMs: 100, timeoutMs: 200 },
      /at most loadReports.intervalMs/,
    ],
    [
      { url: 'http://x/metrics', format: 'vllm', staleAfter: 5 },
      /unknown option "loadReports.staleAfter"; did you mean "staleAfterMs"/,
    ],
  ])('rejects %o', (options, message) => {
    expect(() => new LoadReportScraper(options as LoadReportScraperOptions)).toThrow(OptionError)
    expect(() => new LoadReportScraper(options as LoadReportScraperOptions)).toThrow(message)
  })

  it('defaults to a 1 s interval, 500 ms timeout and 3 s staleness', () => {
    const s = new LoadReportScraper({ url: 'http://127.0.0.1:1/metrics', format: 'sglang' })
    expect([s.intervalMs, s.timeoutMs, s.staleAfterMs]).toEqual([1000, 500, 3000])
  })
})
