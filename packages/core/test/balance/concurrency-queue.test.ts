import { afterEach, describe, expect, it } from 'vitest'
import { type BackendBalancer, type BalancerOptions, createBalancer } from '../../src/balance/balancer.js'
import { BalancerError } from '../../src/balance/errors.js'
import type { AttemptOutcome, BackendLease } from '../../src/balance/types.js'
import { backendConfigs } from './helpers.js'

const ok: AttemptOutcome = { ok: true, status: 200, latencyMs: 5 }
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

function fill(b: BackendBalancer, n: number): BackendLease[] {
  return Array.from({ length: n }, () => b.acquire({}, none) as BackendLease)
}

describe('maxConcurrency and the wait queue', () => {
  it('queues when every backend is full and wakes waiters in FIFO order as leases finish', async () => {
    const b = balancer({ backends: backendConfigs([1, 1], { maxConcurrency: 1 }) })
    const [l1, l2] = fill(b, 2)
    const w1 = b.acquire({}, none)
    const w2 = b.acquire({}, none)
    expect(w1).toBeInstanceOf(Promise)
    expect(b.queueLength).toBe(2)
    expect(b.snapshot().map((s) => s.queued)).toEqual([2, 2])
    l2!.finish(ok)
    const first = await w1
    expect(first.backend.id).toBe(l2!.backend.id)
    expect(b.queueLength).toBe(1)
    l1!.finish(ok)
    expect((await w2).backend.id).toBe(l1!.backend.id)
    expect(b.snapshot().map((s) => [s.inFlight, s.queued])).toEqual([
      [1, 0],
      [1, 0],
    ])
  })

  it('answers 503 queue_full with a Retry-After when the queue is full', () => {
    const b = balancer({
      backends: backendConfigs([1], { maxConcurrency: 1 }),
      queue: { size: 1, retryAfterMs: 2_000 },
    })
    fill(b, 1)
    const waiting = b.acquire({}, none) as Promise<BackendLease>
    waiting.catch(() => {})
    let error: unknown
    try {
      b.acquire({}, none)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(BalancerError)
    expect(error).toMatchObject({ status: 503, code: 'queue_full', retryAfterMs: 2_000 })
  })

  it('counts as queued only the requests that entered the queue, not those turned away', () => {
    const b = balancer({ backends: backendConfigs([1], { maxConcurrency: 1 }), queue: { size: 1 } })
    fill(b, 1)
    const waiting = b.acquire({}, none) as Promise<BackendLease>
    waiting.catch(() => {})
    for (let i = 0; i < 7; i++) expect(() => b.acquire({}, none)).toThrow(/queue is full/)
    expect(b.snapshot()[0]?.queued).toBe(1)
  })

  it('answers 503 queue_timeout when no backend frees up in time', async () => {
    const b = balancer({ backends: backendConfigs([1], { maxConcurrency: 1 }), queue: { timeoutMs: 30 } })
    fill(b, 1)
    await expect(b.acquire({}, none)).rejects.toMatchObject({ status: 503, code: 'queue_timeout' })
    expect(b.queueLength).toBe(0)
    expect(b.snapshot()[0]?.queued).toBe(0)
  })

  it('removes a waiter whose request was aborted, and does not give it a lease later', async () => {
    const b = balancer({ backends: backendConfigs([1], { maxConcurrency: 1 }) })
    const [held] = fill(b, 1)
    const controller = new AbortController()
    const aborted = b.acquire({}, none, controller.signal)
    const next = b.acquire({}, none)
    controller.abort(new Error('client went away'))
    await expect(aborted).rejects.toThrow('client went away')
    expect(b.queueLength).toBe(1)
    held!.finish(ok)
    await expect(next).resolves.toMatchObject({ backend: { id: 'A' } })
    expect(b.snapshot()[0]?.inFlight).toBe(1)
    // An already aborted signal fails at once.
    expect(() => b.acquire({}, none, AbortSignal.abort(new Error('gone')))).toThrow('gone')
  })

  it('asks a signal factory for its signal only when the request has to wait', async () => {
    const b = balancer({ backends: backendConfigs([1], { maxConcurrency: 1 }) })
    let created = 0
    const controller = new AbortController()
    const factory = () => {
      created++
      return controller.signal
    }
    const first = b.acquire({}, none, factory) as BackendLease
    expect(created).toBe(0)
    const waiting = b.acquire({}, none, factory)
    expect(created).toBe(1)
    controller.abort(new Error('client went away'))
    await expect(waiting).rejects.toThrow('client went away')
    expect(b.queueLength).toBe(0)
    first.finish(ok)
  })

  it('does not let a waiter for a busy model block one whose backend is free', async () => {
    const b = balancer({
      backends: [
        { id: 'x', url: 'http://127.0.0.1:9001', models: ['x'], maxConcurrency: 1 },
        { id: 'y', url: 'http://127.0.0.1:9002', models: ['y'], maxConcurrency: 1 },
      ],
    })
    const x = b.acquire({ model: 'x' }, none) as BackendLease
    const y = b.acquire({ model: 'y' }, none) as BackendLease
    const waitX = b.acquire({ model: 'x' }, none)
    const waitY = b.acquire({ model: 'y' }, none)
    y.finish(ok)
    await expect(waitY).resolves.toMatchObject({ backend: { id: 'y' } })
    x.finish(ok)
    await expect(waitX).resolves.toMatchObject({ backend: { id: 'x' } })
  })

  it('wakes waiters when a backend is added', async () => {
    const b = balancer({ backends: backendConfigs([1], { maxConcurrency: 1 }) })
    fill(b, 1)
    const waiting = b.acquire({}, none)
    b.registry.add({ id: 'extra', url: 'http://127.0.0.1:9200' })
    await expect(waiting).resolves.toMatchObject({ backend: { id: 'extra' } })
  })

  it('uses an unlimited backend before queueing', () => {
    const b = balancer({
      backends: [
        { id: 'limited', url: 'http://127.0.0.1:9001', maxConcurrency: 1 },
        { id: 'open', url: 'http://127.0.0.1:9002' },
      ],
    })
    const leases = fill(b, 5)
    expect(leases.filter((l) => l.backend.id === 'limited')).toHaveLength(1)
    expect(b.queueLength).toBe(0)
  })

  it('fails waiters when the balancer closes', async () => {
    const b = createBalancer({ backends: backendConfigs([1], { maxConcurrency: 1 }) })
    fill(b, 1)
    const waiting = b.acquire({}, none)
    await b.close()
    await expect(waiting).rejects.toMatchObject({ status: 503, code: 'no_backend_available' })
    expect(() => b.acquire({}, none)).toThrow('The balancer is closed')
  })
})
