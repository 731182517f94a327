import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { ActiveHealthCheck } from '../../src/balance/active-health-check.js'
import { LoadReportScraper } from '../../src/balance/load-reports/scraper.js'
import { BackendRegistry } from '../../src/balance/registry.js'

// Runs with --expose-gc (the `core-gc` project): a deadline that only a timer's weak reference kept
// alive is collected by these gc() calls and never fires.
const gc = (globalThis as { gc?: () => void }).gc
if (gc === undefined) throw new Error('run this file with node --expose-gc (vitest project core-gc)')

const closers: (() => Promise<unknown> | unknown)[] = []
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
})

/**
 * A server whose every answer is a 200 that never ends: a byte every 100 ms, more often than any
 * timeout between chunks, so only the call's own deadline can end it.
 */
async function tricklingServer(): Promise<{ origin: string; requests: () => number }> {
  let requests = 0
  const open = new Set<ServerResponse>()
  const ticker = setInterval(() => {
    for (const res of open) res.write('.')
  }, 100)
  const server: Server = createServer((_req, res) => {
    requests++
    open.add(res)
    res.on('close', () => open.delete(res))
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('#')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  closers.push(
    () =>
      new Promise((resolve) => {
        clearInterval(ticker)
        server.closeAllConnections()
        server.close(resolve)
      }),
  )
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests: () => requests }
}

/** Collects garbage every 20 ms until the test ends, so a weakly held timeout cannot survive. */
function collectGarbageOften(): void {
  const collector = setInterval(() => gc!(), 20)
  closers.push(() => clearInterval(collector))
}

async function within<T>(ms: number, what: string, pending: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([pending, late])
  } finally {
    clearTimeout(timer)
  }
}

async function waitFor(check: () => boolean, what: string, ms: number): Promise<void> {
  const until = Date.now() + ms
  while (!check()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('deadlines of probes and scrapes survive garbage collection', () => {
  it('times out a /health that trickles and marks the backend unhealthy', async () => {
    const backend = await tricklingServer()
    const registry = new BackendRegistry([{ id: 'trickle', url: `${backend.origin}/v1` }])
    const check = new ActiveHealthCheck(registry, {
      timeoutMs: 500,
      intervalMs: 60_000,
      unhealthyThreshold: 2,
    })
    closers.push(() => check.close())
    collectGarbageOften()
    // Two rounds in a row, each bounded by the probe's 500 ms deadline (plus slack for a slow host).
    await within(3000, 'the first round of probes', check.checkNow())
    await within(3000, 'the second round of probes', check.checkNow())
    // The trickle was reached (a busy host may time a later probe out before it gets there).
    expect(backend.requests()).toBeGreaterThanOrEqual(1)
    expect(registry.get('trickle')!.activeHealthy).toBe(false)
  })

  it('fails a scrape of a /metrics that trickles, and goes on scraping', async () => {
    const backend = await tricklingServer()
    const scraper = new LoadReportScraper({
      url: `${backend.origin}/metrics`,
      format: 'vllm',
      intervalMs: 300,
      timeoutMs: 200,
    })
    closers.push(() => scraper.close())
    collectGarbageOften()
    scraper.start()
    await waitFor(() => scraper.state.failures >= 3, 'three failed scrapes', 5000)
    expect(scraper.state).toMatchObject({ stale: true, lastError: expect.stringMatching(/time/i) })
    expect(backend.requests()).toBeGreaterThanOrEqual(3)
  })
})
