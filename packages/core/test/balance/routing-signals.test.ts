import { afterEach, describe, expect, it } from 'vitest'
import type { BackendState, LoadReportSource } from '../../src/balance/backend-state.js'
import { type BackendBalancer, type BalancerOptions, createBalancer } from '../../src/balance/balancer.js'
import { validateBackendConfig } from '../../src/balance/config.js'
import type { LoadReport } from '../../src/balance/load-reports/engines.js'
import type { BackendLease, BackendSnapshot } from '../../src/balance/types.js'
import { OptionError } from '../../src/validation.js'
import { backendConfigs } from './helpers.js'

const none = new Set<string>()
const open: BackendBalancer[] = []
function balancer(options: BalancerOptions): BackendBalancer {
  const b = createBalancer(options)
  open.push(b)
  return b
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((b) => b.close()))
})

function lease(b: BackendBalancer, ctx = {}): BackendLease {
  const result = b.acquire(ctx, none)
  if (result instanceof Promise) throw new Error('expected a synchronous lease')
  return result
}

/** A report source the test sets by hand; `undefined` reads as stale. */
function report(backend: BackendState, value: Partial<LoadReport> | undefined): void {
  const full: LoadReport | undefined =
    value === undefined ? undefined : { waiting: 0, running: 0, kvUsage: 0, at: 0, ...value }
  const source: LoadReportSource = {
    current: () => full,
    state: {
      report: full,
      ageMs: full ? 0 : undefined,
      stale: full === undefined,
      scrapes: 1,
      failures: full ? 0 : 1,
      consecutiveFailures: full ? 0 : 1,
      lastError: full ? undefined : 'HTTP 500',
    },
  }
  backend.reports = source
  backend.requestsAtReport = backend.totalRequests
}

function picks(b: BackendBalancer, n: number, ctx = {}): string[] {
  const ids: string[] = []
  for (let i = 0; i < n; i++) ids.push(lease(b, ctx).backend.id)
  return ids
}

describe('least-load', () => {
  it('sends to the backend whose report shows the least queue, batch and KV use', () => {
    const b = balancer({ backends: backendConfigs([1, 1, 1]), strategy: 'least-load' })
    const [A, B, C] = b.registry.list() as BackendState[]
    report(A!, { waiting: 4, running: 8 })
    report(B!, { waiting: 0, running: 2 })
    report(C!, { waiting: 0, running: 2, kvUsage: 0.9 })
    expect(lease(b).backend.id).toBe('B')
  })

  it('counts what it sent since the last report, so a burst between two scrapes spreads', () => {
    const b = balancer({ backends: backendConfigs([1, 1]), strategy: 'least-load' })
    const [A, B] = b.registry.list() as BackendState[]
    report(A!, { running: 0 })
    report(B!, { running: 3 })
    // With the report alone, all ten would land on A.
    const ids = picks(b, 10)
    expect(ids.filter((id) => id === 'A').length).toBe(6)
    expect(ids.filter((id) => id === 'B').length).toBe(4)
  })

  it('without fresh reports behaves like the local estimate: in flight spreads the requests', () => {
    const b = balancer({ backends: backendConfigs([1, 1]), strategy: 'least-load' })
    const [A, B] = b.registry.list() as BackendState[]
    report(A!, undefined)
    report(B!, undefined)
    const ids = picks(b, 10)
    expect(ids.filter((id) => id === 'A').length).toBe(5)
  })
})

describe('reported saturation', () => {
  it('leaves out a backend reporting a full queue while another has room, with any strategy', () => {
    const b = balancer({ backends: backendConfigs([1, 1]), loadReports: { maxWaiting: 4 } })
    const [A, B] = b.registry.list() as BackendState[]
    report(A!, { waiting: 4, running: 8 })
    report(B!, { waiting: 0, running: 30 })
    expect(picks(b, 6)).toEqual(['B', 'B', 'B', 'B', 'B', 'B'])
  })

  it('never refuses because of reports: all saturated still get requests', () => {
    const b = balancer({ backends: backendConfigs([1, 1]), loadReports: { maxWaiting: 1 } })
    const [A, B] = b.registry.list() as BackendState[]
    report(A!, { waiting: 9 })
    report(B!, { waiting: 9 })
    expect(new Set(picks(b, 4))).toEqual(new Set(['A', 'B']))
  })

  it('a stale report never makes a backend saturated', () => {
    const b = balancer({ backends: backendConfigs([1, 1]), loadReports: { maxWaiting: 1 } })
    const [A, B] = b.registry.list() as BackendState[]
    report(A!, undefined)
    report(B!, undefined)
    expect(picks(b, 4)).toEqual(['A', 'B', 'A', 'B'])
  })
})

describe('backend metrics option', () => {
  it('accepts a format name or { format, path } and names a bad one', () => {
    expect(validateBackendConfig({ url: 'http://h:1/v1', metrics: 'tgi' }).metrics).toEqual({
      format: 'tgi',
      path: '/metrics',
    })
    expect(
      validateBackendConfig({ url: 'http://h:1', metrics: { format: 'sglang', path: '/m' } }).metrics,
    ).toEqual({ format: 'sglang', path: '/m' })
    expect(() => validateBackendConfig({ url: 'http://h:1', metrics: 'ollama' })).toThrow(
      /^tollgate: option "backend.metrics" must be one of "vllm", "sglang", "tgi", "llamacpp", or \{ format, path \}; got "ollama"/,
    )
    expect(() =>
      validateBackendConfig({ url: 'http://h:1', metrics: { format: 'vllm', path: 'x' } }),
    ).toThrow('option "backend.metrics.path"')
    expect(() => validateBackendConfig({ url: 'http://h:1', metrics: { format: 'vllm', every: 1 } })).toThrow(
      OptionError,
    )
  })

  it('checks loadReports at startup', () => {
    expect(() => createBalancer({ loadReports: { intervalMs: 5 } })).toThrow(
      'option "loadReports.intervalMs" must be',
    )
    expect(() => createBalancer({ loadReports: { timeoutMs: 2000 } })).toThrow(
      'option "loadReports.timeoutMs" must be at most loadReports.intervalMs (1000)',
    )
    expect(() => createBalancer({ loadReports: { every: 1 } as never })).toThrow('loadReports')
  })
})

describe('zones', () => {
  function zoned(options: Partial<BalancerOptions> = {}): BackendBalancer {
    return balancer({
      backends: [
        { id: 'a1', url: 'http://127.0.0.1:9001', zone: 'a', maxConcurrency: 2 },
        { id: 'b1', url: 'http://127.0.0.1:9002', zone: 'b' },
        { id: 'c1', url: 'http://127.0.0.1:9003', zone: 'c' },
      ],
      zone: 'a',
      zonePreference: ['c'],
      strategy: 'round-robin',
      ...options,
    })
  }
  const zoneOf = (snapshot: BackendSnapshot[], id: string) => snapshot.find((s) => s.id === id)?.zone

  it('keeps traffic in the local zone while it has room, and spills in preference order', () => {
    const b = zoned()
    const first = lease(b)
    const second = lease(b)
    expect([first.backend.id, second.backend.id]).toEqual(['a1', 'a1'])
    // a1 is at maxConcurrency: the next zone is c (preferred), not b.
    expect(lease(b).backend.id).toBe('c1')
    first.finish({ ok: true, latencyMs: 1 })
    expect(lease(b).backend.id).toBe('a1')
    const zones = b.zoneSnapshot()
    expect(zones.map((z) => [z.zone, z.rank, z.totalRequests, z.spilledRequests])).toEqual([
      ['a', 0, 3, 0],
      ['c', 1, 1, 1],
      ['b', 2, 0, 0],
    ])
    expect(zoneOf(b.snapshot(), 'a1')).toBe('a')
  })

  it("keeps a removed backend's requests in its zone's totals, so the counter never goes down", () => {
    const b = zoned()
    lease(b).finish({ ok: true, latencyMs: 1 })
    lease(b).finish({ ok: true, latencyMs: 1 })
    const before = b.zoneTotals()
    expect(before.get('a')).toEqual({ requests: 2, spilled: 0 })
    b.registry.remove('a1')
    expect(b.zoneTotals().get('a')).toEqual({ requests: 2, spilled: 0 })
    // A zone is listed even once it has no backend left.
    expect(b.zoneSnapshot().map((z) => z.zone)).not.toContain('a')
    expect(lease(b).backend.id).toBe('c1')
    expect(b.zoneTotals().get('c')).toEqual({ requests: 1, spilled: 1 })
  })

  it('spills when the local backends are draining, ejected or reported saturated, and returns after', () => {
    const b = zoned({ loadReports: { maxWaiting: 2 } })
    void b.registry.drain('a1')
    expect(lease(b).backend.id).toBe('c1')
    b.registry.undrain('a1')
    expect(lease(b).backend.id).toBe('a1')
    const a1 = b.registry.get('a1')!
    a1.ejectedUntil = Date.now() + 60_000
    expect(lease(b).backend.id).toBe('c1')
    a1.ejectedUntil = 0
    report(a1, { waiting: 5 })
    expect(lease(b).backend.id).toBe('c1')
    report(a1, { waiting: 0 })
    expect(lease(b).backend.id).toBe('a1')
  })

  it('ignores zones when the gateway has none', () => {
    const b = balancer({
      backends: [
        { id: 'a1', url: 'http://127.0.0.1:9001', zone: 'a' },
        { id: 'b1', url: 'http://127.0.0.1:9002', zone: 'b' },
      ],
    })
    expect(picks(b, 4)).toEqual(['a1', 'b1', 'a1', 'b1'])
  })

  it('rejects a bad zone setup at startup', () => {
    expect(() => createBalancer({ zonePreference: ['b'] })).toThrow(
      'option "zonePreference" must be used with',
    )
    expect(() => createBalancer({ zone: '' })).toThrow('option "zone" must be')
    expect(() => createBalancer({ zone: 'a', zonePreference: ['a'] })).toThrow(
      `option "zonePreference[0]" must be a zone not already listed ("a" is the gateway's own zone)`,
    )
  })
})
