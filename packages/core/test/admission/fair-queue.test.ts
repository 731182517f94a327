import type { IncomingMessage } from 'node:http'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { createBalancer } from '../../src/balance/balancer.js'
import type { BalancerError } from '../../src/balance/errors.js'
import type { BackendLease } from '../../src/balance/types.js'
import { OptionError } from '../../src/validation.js'
import { closeHarnesses, count, harness, none, track } from './harness.js'

afterEach(async () => {
  vi.useRealTimers()
  await closeHarnesses()
})

describe('fair queuing between tenants', () => {
  it('gives two saturating tenants equal shares, whoever came first', async () => {
    const h = harness({})
    await h.establish('heavy', 'light')
    for (let i = 0; i < 20; i++) void h.ask('heavy')
    for (let i = 0; i < 5; i++) void h.ask('light')
    const served = await h.serve(10)
    expect(count(served)).toEqual({ heavy: 5, light: 5 })
  })

  it('serves weights 3:1 in that proportion', async () => {
    const h = harness({ weights: { gold: 3 } })
    await h.establish('free')
    for (let i = 0; i < 20; i++) void h.ask('free')
    for (let i = 0; i < 20; i++) void h.ask('gold')
    expect(count(await h.serve(16))).toEqual({ gold: 12, free: 4 })
  })

  it('takes weights from a function, asked once per tenant', async () => {
    const weights = vi.fn((tenant: string) => (tenant === 'gold' ? 3 : 1))
    const h = harness({ weights })
    await h.establish('gold', 'free')
    for (let i = 0; i < 8; i++) void h.ask('gold')
    for (let i = 0; i < 8; i++) void h.ask('free')
    expect(count(await h.serve(8))).toEqual({ gold: 6, free: 2 })
    expect(weights).toHaveBeenCalledTimes(2)
  })

  it('gives a returning tenant its share at once, without credit for the time it was away', async () => {
    const h = harness({})
    await h.establish('a', 'b', 'late')
    for (let i = 0; i < 30; i++) void h.ask('a')
    for (let i = 0; i < 30; i++) void h.ask('b')
    await h.serve(20)
    for (let i = 0; i < 10; i++) void h.ask('late')
    // Its share from the next slot on: one in three, not ten in a row to catch up.
    expect(count(await h.serve(9))).toEqual({ a: 3, b: 3, late: 3 })
  })

  it('does not charge a tenant for requests that left without being served', async () => {
    vi.useFakeTimers()
    const h = harness({})
    await h.establish('a', 'b')
    for (let i = 0; i < 5; i++) void h.ask('a', { 'x-request-deadline-ms': '100' })
    for (let i = 0; i < 5; i++) void h.ask('a')
    for (let i = 0; i < 5; i++) void h.ask('b')
    await vi.advanceTimersByTimeAsync(100)
    expect(h.b.queueLength).toBe(10)
    expect(count(await h.serve(6))).toEqual({ a: 3, b: 3 })
  })

  it('hands an idle tenant’s share to the others', async () => {
    const h = harness({ weights: { big: 3 } })
    for (let i = 0; i < 10; i++) void h.ask('small')
    expect(count(await h.serve(5))).toEqual({ small: 5 })
  })

  it('counts shares by the cost hook', async () => {
    const h = harness({ cost: ((request: { tokens: number }) => request.tokens) as never })
    await h.establish('long', 'short')
    for (let i = 0; i < 10; i++) void h.ask('long', {}, { tokens: 3 })
    for (let i = 0; i < 10; i++) void h.ask('short', {}, { tokens: 1 })
    expect(count(await h.serve(8))).toEqual({ long: 2, short: 6 })
  })

  it('reads the tenant from a function of the request', async () => {
    const h = harness({ tenant: ((request: { user: string }) => request.user) as never })
    void h.ask('ignored', {}, { user: 'x' })
    void h.ask('ignored', {}, { user: 'y' })
    await h.serve(2)
    for (let i = 0; i < 6; i++) void h.ask('ignored', {}, { user: 'x' })
    for (let i = 0; i < 6; i++) void h.ask('ignored', {}, { user: 'y' })
    await h.serve(4)
    const rows = h.b.queueSnapshot().tenants.map((t) => [t.tenant, t.served, t.waiting])
    expect(rows).toEqual([
      ['x', 2, 4],
      ['y', 2, 4],
      ['(new)', 2, 0],
    ])
  })
})

describe('priorities', () => {
  const priority = ((request: { p: string | number }) => request.p) as never

  it('serves critical before standard before sheddable, and numbers by size', async () => {
    const h = harness({ priority })
    void h.ask('shed', {}, { p: 'sheddable' })
    void h.ask('std', {}, { p: 'standard' })
    void h.ask('n5', {}, { p: 5 })
    void h.ask('crit', {}, { p: 'critical' })
    expect(await h.serve(4)).toEqual(['n5', 'crit', 'std', 'shed'])
  })

  it('sheds waiting sheddable requests once a standard one has waited half its time', async () => {
    vi.useFakeTimers()
    const h = harness({ priority }, { queue: { timeoutMs: 1_000 } })
    const shed = h.ask('batch', {}, { p: 'sheddable' }).catch((e: BalancerError) => e)
    const standard = h.ask('user', {}, { p: 'standard' }).catch((e: BalancerError) => e)
    await vi.advanceTimersByTimeAsync(499)
    expect(h.b.queueLength).toBe(2)
    await vi.advanceTimersByTimeAsync(1)
    const error = (await shed) as BalancerError
    expect([error.status, error.code, error.retryAfterMs]).toEqual([503, 'shed', 1_000])
    // While that pressure lasts, a new sheddable request is turned away at once.
    await expect(h.ask('batch', {}, { p: 'sheddable' })).rejects.toMatchObject({ code: 'shed' })
    expect(h.b.queueLength).toBe(1)
    expect(await h.serve(1)).toEqual(['user'])
    await standard
  })

  it('turns a sheddable request away after half its allowed wait', async () => {
    vi.useFakeTimers()
    const h = harness({ priority }, { queue: { timeoutMs: 1_000 } })
    const shed = h.ask('batch', {}, { p: -3 }).catch((e: BalancerError) => e)
    await vi.advanceTimersByTimeAsync(499)
    expect(h.b.queueLength).toBe(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(await shed).toMatchObject({ status: 503, code: 'shed' })
  })

  it('lets a higher class push the newest sheddable request out of a full queue', async () => {
    const h = harness({ priority }, { queue: { size: 2 } })
    void h.ask('batch', {}, { p: 'standard' })
    void h.ask('user', {}, { p: 'standard' })
    await h.serve(2)
    const first = h.ask('batch', {}, { p: 'sheddable' })
    const second = h.ask('batch', {}, { p: 'sheddable' }).catch((e: BalancerError) => e.code)
    void h.ask('user', {}, { p: 'standard' })
    expect(await second).toBe('queue_full')
    await expect(h.ask('other', {}, { p: 'sheddable' })).rejects.toMatchObject({ code: 'queue_full' })
    expect(await h.serve(2)).toEqual(['user', 'batch'])
    await first
  })

  it('falls back to standard when the priority function fails, and says so once', async () => {
    const h = harness({
      priority: (() => {
        throw new Error('boom')
      }) as never,
    })
    void h.ask('a', {}, {})
    void h.ask('b', {}, {})
    expect(await h.serve(2)).toEqual(['a', 'b'])
    expect(h.warnings).toHaveLength(1)
    expect(h.warnings[0]).toMatch(/fairness\.priority callback failed \(boom\)/)
  })
})

describe('deadlines and bounds', () => {
  it('waits no longer than the deadline header says', async () => {
    vi.useFakeTimers()
    const h = harness({}, { queue: { timeoutMs: 10_000 } })
    const short = h.ask('a', { 'x-request-deadline-ms': '200' }).catch((e: BalancerError) => e)
    await vi.advanceTimersByTimeAsync(200)
    expect(await short).toMatchObject({ status: 503, code: 'queue_timeout' })
    await expect(h.ask('a', { 'x-request-deadline-ms': 'soon' })).rejects.toMatchObject({
      status: 400,
      code: 'invalid_deadline',
    })
    await expect(h.ask('a', { 'x-request-deadline-ms': '0' })).rejects.toMatchObject({
      code: 'queue_timeout',
    })
  })

  it('caps one tenant’s waiting requests without taking room from others', async () => {
    const h = harness({ maxWaitingPerTenant: 2 }, { queue: { size: 10 } })
    await h.establish('flood', 'calm')
    void h.ask('flood')
    void h.ask('flood')
    await expect(h.ask('flood')).rejects.toMatchObject({ status: 503, code: 'tenant_queue_full' })
    void h.ask('calm')
    expect(h.b.queueLength).toBe(3)
  })

  it('lets a newcomer push the newest request of the longest queue out of a full queue', async () => {
    const h = harness({}, { queue: { size: 4 } })
    await h.establish('flood', 'calm', 'calm2')
    const flood = Array.from({ length: 4 }, () => h.ask('flood').catch((e: BalancerError) => e.code))
    void h.ask('calm')
    expect(await flood[3]).toBe('queue_full')
    void h.ask('calm2')
    expect(await flood[2]).toBe('queue_full')
    expect(count(await h.serve(4))).toEqual({ flood: 2, calm: 1, calm2: 1 })
  })

  it('forgets quiet tenants beyond maxTenants, and keeps the rest for the snapshot', async () => {
    const h = harness({ maxTenants: 2 })
    await h.establish('t1', 't2', 't3', 't4')
    void h.ask('t3')
    void h.ask('t4')
    await h.serve(2)
    const snapshot = h.b.queueSnapshot()
    expect(snapshot.waiting).toBe(0)
    expect(snapshot.tenants.map((t) => [t.tenant, t.served, t.servedShare])).toEqual([
      ['t3', 1, 1 / 6],
      ['t4', 1, 1 / 6],
      ['(new)', 4, 4 / 6],
    ])
    // A forgotten tenant shares the newcomers' place again until it is served.
    void h.ask('t1')
    expect(h.b.queueSnapshot().tenants.find((t) => t.newcomers)?.waiting).toBe(1)
  })

  it('forgets tenants quiet for longer than idleMs', async () => {
    let now = 0
    const h = harness({ idleMs: 1_000 }, { now: () => now })
    void h.ask('gone')
    await h.serve(1)
    void h.ask('gone')
    await h.serve(1)
    expect(h.b.queueSnapshot().tenants.map((t) => t.tenant)).toEqual(['gone', '(new)'])
    now = 1_001
    expect(h.b.queueSnapshot().tenants.map((t) => t.tenant)).toEqual(['(new)'])
  })

  it('leaves the queue at once when the client goes away', async () => {
    const h = harness({})
    const controller = new AbortController()
    const req = { headers: { 'x-tenant-id': 'x' } } as unknown as IncomingMessage
    const waiting = h.b.acquire({ req }, none, controller.signal) as Promise<BackendLease>
    expect(h.b.queueLength).toBe(1)
    controller.abort(new Error('client left'))
    await expect(waiting).rejects.toThrow('client left')
    expect(h.b.queueLength).toBe(0)
    expect(h.b.snapshot()[0]?.queued).toBe(0)
  })

  it('rejects bad fairness options at startup, naming them', () => {
    expect(() => createBalancer({ fairness: { weights: { gold: -1 } } })).toThrow(
      'tollgate: option "fairness.weights["gold"]" must be a positive number; got -1',
    )
    expect(() => createBalancer({ fairness: { tenant: 'bad header' } })).toThrow(OptionError)
    expect(() => createBalancer({ fairness: { tenants: 'x' } as never })).toThrow(
      /unknown option "fairness\.tenants"; did you mean "tenant"\?/,
    )
    expect(() => createBalancer({ fairness: { maxWaitingPerTenant: 0 } })).toThrow(OptionError)
  })

  it('keeps the FIFO queue without fairness', async () => {
    const b = track(createBalancer({ backends: [{ url: 'http://127.0.0.1:1', maxConcurrency: 1 }] }))
    b.acquire({}, none)
    ;(b.acquire({}, none) as Promise<BackendLease>).catch(() => {})
    expect(b.queueSnapshot()).toEqual({ waiting: 1, tenants: [], priorities: [] })
  })
})
