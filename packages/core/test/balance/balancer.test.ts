import { afterEach, describe, expect, it } from 'vitest'
import { type BackendBalancer, type BalancerOptions, createBalancer } from '../../src/balance/balancer.js'
import { BalancerError } from '../../src/balance/errors.js'
import type { AttemptOutcome, BackendLease } from '../../src/balance/types.js'
import { backendConfigs, manualClock } from './helpers.js'

const ok: AttemptOutcome = { ok: true, status: 200, latencyMs: 20 }
const fail: AttemptOutcome = { ok: false, error: new Error('ECONNREFUSED'), latencyMs: 1 }
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

function lease(b: BackendBalancer, ctx = {}, exclude: ReadonlySet<string> = none): BackendLease {
  const result = b.acquire(ctx, exclude)
  if (result instanceof Promise) throw new Error('expected a synchronous lease')
  return result
}

function caught(fn: () => unknown): BalancerError {
  try {
    fn()
  } catch (error) {
    if (error instanceof BalancerError) return error
    throw error
  }
  throw new Error('expected a BalancerError')
}

describe('BackendBalancer', () => {
  it('answers synchronously when a backend is free and counts in flight until finish', () => {
    const clock = manualClock()
    const b = balancer({ backends: backendConfigs([1, 1]), now: clock.now })
    const first = b.acquire({}, none)
    expect(first).not.toBeInstanceOf(Promise)
    const l = first as BackendLease
    expect(l.backend.url).toBeInstanceOf(URL)
    expect(b.registry.get(l.backend.id)?.inFlight).toBe(1)
    l.finish(ok)
    l.finish(fail) // second call is ignored
    const snap = b.snapshot().find((s) => s.id === l.backend.id)!
    expect(snap).toMatchObject({
      inFlight: 0,
      totalRequests: 1,
      totalErrors: 0,
      status: 'healthy',
      latencyMs: 20,
    })
  })

  it('skips excluded backends and says so when all were tried', () => {
    const b = balancer({ backends: backendConfigs([1, 1]) })
    expect(lease(b, {}, new Set(['A'])).backend.id).toBe('B')
    const error = caught(() => b.acquire({}, new Set(['A', 'B'])))
    expect(error).toMatchObject({ status: 503, code: 'no_backend_available' })
    expect(error.message).toBe('Every backend has already been tried for this request')
  })

  it('routes by model and answers 404 with the models that exist for an unknown one', () => {
    const b = balancer({
      backends: [
        { id: 'big', url: 'http://127.0.0.1:9001', models: ['llama-3-70b'] },
        { id: 'small', url: 'http://127.0.0.1:9002', models: ['llama-3-8b', 'qwen-2'] },
      ],
    })
    expect(b.models()).toEqual(['llama-3-70b', 'llama-3-8b', 'qwen-2'])
    for (let i = 0; i < 4; i++) expect(lease(b, { model: 'qwen-2' }).backend.id).toBe('small')
    const error = caught(() => b.acquire({ model: 'gpt-5' }, none))
    expect(error).toMatchObject({ status: 404, code: 'unknown_model', details: { models: b.models() } })
    expect(error.message).toContain('"gpt-5"')

    // Known model, but its only backend is draining: 503, not 404.
    void b.registry.drain('big')
    expect(caught(() => b.acquire({ model: 'llama-3-70b' }, none))).toMatchObject({
      status: 503,
      code: 'no_backend_available',
    })
  })

  it('lets backends without models serve any model', () => {
    const b = balancer({
      backends: [
        { id: 'any', url: 'http://127.0.0.1:9001' },
        { id: 'x', url: 'http://127.0.0.1:9002', models: ['x'] },
      ],
    })
    expect(b.models()).toEqual(['x'])
    expect(lease(b, { model: 'whatever' }).backend.id).toBe('any')
  })

  it('ejects after N consecutive failures and re-admits when the time has passed', () => {
    const clock = manualClock()
    const b = balancer({
      backends: backendConfigs([1, 1, 1, 1]),
      now: clock.now,
      health: { outlier: { consecutiveFailures: 3, baseEjectionMs: 30_000, maxEjectionMs: 50_000 } },
    })
    const failOn = (id: string) =>
      lease(b, {}, new Set(['A', 'B', 'C', 'D'].filter((x) => x !== id))).finish(fail)
    failOn('A')
    failOn('A')
    // A success in between starts the count over.
    lease(b, {}, new Set(['B', 'C', 'D'])).finish(ok)
    failOn('A')
    failOn('A')
    expect(b.registry.get('A')?.status()).toBe('healthy')
    failOn('A')
    expect(b.snapshot()[0]).toMatchObject({ status: 'ejected', ejectedUntil: clock.now() + 30_000 })
    for (let i = 0; i < 12; i++) expect(lease(b).backend.id).not.toBe('A')

    clock.advance(30_001)
    expect(b.registry.get('A')?.status()).toBe('healthy')
    const ids = new Set(Array.from({ length: 8 }, () => lease(b).backend.id))
    expect(ids.has('A')).toBe(true)

    // Ejected again: twice the base time, then capped at maxEjectionMs.
    for (let i = 0; i < 3; i++) failOn('A')
    expect(b.registry.get('A')?.ejectedUntil).toBe(clock.now() + 50_000)
  })

  it('never ejects more than half of the backends at once', () => {
    const clock = manualClock()
    const b = balancer({
      backends: backendConfigs([1, 1, 1, 1, 1]),
      now: clock.now,
      health: { outlier: { consecutiveFailures: 1 } },
    })
    for (const id of ['A', 'B', 'C', 'D', 'E']) {
      lease(b, {}, new Set(['A', 'B', 'C', 'D', 'E'].filter((x) => x !== id))).finish(fail)
    }
    const statuses = b.snapshot().map((s) => s.status)
    expect(statuses.filter((s) => s === 'ejected')).toHaveLength(2)
    expect(statuses.slice(0, 2)).toEqual(['ejected', 'ejected'])
    // The rest keep serving.
    for (let i = 0; i < 6; i++) expect(['C', 'D', 'E']).toContain(lease(b).backend.id)
  })

  it('does not eject a lone backend', () => {
    const b = balancer({ backends: backendConfigs([1]), health: { outlier: { consecutiveFailures: 1 } } })
    for (let i = 0; i < 5; i++) lease(b).finish(fail)
    expect(b.snapshot()[0]?.status).toBe('healthy')
  })

  it('does not count cancelled attempts or 429s toward ejection', () => {
    const b = balancer({ backends: backendConfigs([1, 1]), health: { outlier: { consecutiveFailures: 2 } } })
    const onlyA = new Set(['B'])
    for (let i = 0; i < 5; i++) lease(b, {}, onlyA).finish({ ok: false, cancelled: true, latencyMs: 1 })
    for (let i = 0; i < 5; i++) lease(b, {}, onlyA).finish({ ok: false, status: 429, latencyMs: 1 })
    expect(b.snapshot()[0]).toMatchObject({ status: 'healthy', totalRequests: 10, totalErrors: 5 })
  })

  it('cools a backend down for its Retry-After, capped', () => {
    const clock = manualClock()
    const b = balancer({
      backends: backendConfigs([1, 1]),
      now: clock.now,
      health: { maxCoolDownMs: 60_000 },
    })
    lease(b, {}, new Set(['B'])).finish({ ok: false, status: 429, latencyMs: 3, retryAfterMs: 5_000 })
    expect(b.snapshot()[0]?.status).toBe('cooling-down')
    for (let i = 0; i < 6; i++) expect(lease(b).backend.id).toBe('B')
    const error = caught(() => b.acquire({}, new Set(['B'])))
    expect(error).toMatchObject({ status: 503, code: 'no_backend_available', retryAfterMs: 5_000 })
    clock.advance(5_000)
    expect(b.snapshot()[0]?.status).toBe('healthy')
    expect(lease(b, {}, new Set(['B'])).backend.id).toBe('A')

    lease(b, {}, new Set(['B'])).finish({ ok: false, status: 503, latencyMs: 3, retryAfterMs: 86_400_000 })
    expect(b.registry.get('A')?.coolDownUntil).toBe(clock.now() + 60_000)
  })

  it('drains: no new requests, resolves when in-flight ones finish, undrain restores', async () => {
    const b = balancer({ backends: backendConfigs([1, 1]) })
    const onA = lease(b, {}, new Set(['B']))
    let drained = false
    const done = b.registry.drain('A').then(() => {
      drained = true
    })
    expect(b.snapshot()[0]?.status).toBe('draining')
    for (let i = 0; i < 4; i++) expect(lease(b).backend.id).toBe('B')
    await Promise.resolve()
    expect(drained).toBe(false)
    onA.finish(ok)
    await done
    expect(drained).toBe(true)
    b.registry.undrain('A')
    expect(new Set(Array.from({ length: 4 }, () => lease(b).backend.id))).toEqual(new Set(['A', 'B']))
    expect(() => b.registry.drain('nope')).toThrow(
      'tollgate: option "id" must be the id of a registered backend (registered: "A", "B"); got "nope"',
    )
  })

  it('adds and removes backends at runtime', () => {
    const b = balancer({ backends: backendConfigs([1]) })
    const v = b.registry.version
    b.registry.add({ id: 'new', url: 'http://127.0.0.1:9100', models: ['m'] })
    expect(b.registry.version).not.toBe(v)
    expect(b.models()).toEqual(['m'])
    expect(new Set(Array.from({ length: 4 }, () => lease(b).backend.id))).toEqual(new Set(['A', 'new']))
    const held = lease(b, {}, new Set(['A']))
    expect(b.registry.remove('new')).toBe(true)
    expect(b.registry.remove('new')).toBe(false)
    held.finish(ok) // finishing on a removed backend is harmless
    expect(b.models()).toEqual([])
    for (let i = 0; i < 3; i++) expect(lease(b).backend.id).toBe('A')
  })

  it('answers 503 when no backend is registered', () => {
    const b = balancer({ backends: [] })
    expect(caught(() => b.acquire({ model: 'x' }, none))).toMatchObject({
      status: 503,
      code: 'no_backend_available',
      message: 'No backends are registered',
    })
  })

  it('falls back to unhealthy backends when health leaves nothing (panic mode)', () => {
    const b = balancer({ backends: backendConfigs([1, 1]) })
    for (const s of b.registry.list()) s.activeHealthy = false
    expect(['A', 'B']).toContain(lease(b).backend.id)
    // Not when a healthy backend exists but was already tried.
    b.registry.get('A')!.activeHealthy = true
    expect(caught(() => b.acquire({}, new Set(['A'])))).toMatchObject({ code: 'no_backend_available' })
  })

  it('uses the configured strategy, custom functions included', () => {
    const b = balancer({
      backends: backendConfigs([1, 1, 1]),
      strategy: (candidates, ctx) => candidates.find((c) => c.id === ctx.hashKey),
    })
    expect(lease(b, { hashKey: 'C' }).backend.id).toBe('C')
    expect(caught(() => b.acquire({ hashKey: 'Z' }, none))).toMatchObject({ code: 'no_backend_available' })
    expect(() => createBalancer({ strategy: 'fastest' as never })).toThrow('got "fastest"')
    expect(() => createBalancer({ backends: [{ url: 'http://a', weight: -2 }] })).toThrow(
      'tollgate: option "backends[0].weight" must be a positive number (default 1); got -2',
    )
  })

  it('records latency so least-latency moves load off a slow backend', () => {
    const clock = manualClock()
    const b = balancer({ backends: backendConfigs([1, 1]), strategy: 'least-latency', now: clock.now })
    lease(b, {}, new Set(['B'])).finish({ ok: true, status: 200, latencyMs: 900 })
    lease(b, {}, new Set(['A'])).finish({ ok: true, status: 200, latencyMs: 30 })
    const counts: Record<string, number> = {}
    for (let i = 0; i < 100; i++) {
      const l = lease(b)
      counts[l.backend.id] = (counts[l.backend.id] ?? 0) + 1
      l.finish({ ok: true, status: 200, latencyMs: l.backend.id === 'A' ? 900 : 30 })
      clock.advance(10)
    }
    expect(counts.B).toBeGreaterThan(90)
  })

  it('counts failures as slow, so a fast-failing backend does not attract traffic', () => {
    const clock = manualClock()
    const b = balancer({ backends: backendConfigs([1]), failurePenaltyMs: 1_000, now: clock.now })
    lease(b).finish(fail)
    expect(b.snapshot()[0]?.latencyMs).toBe(1_000)
  })
})
