import { afterEach, describe, expect, it } from 'vitest'
import type { BackendState, LoadReportSource } from '../../src/balance/backend-state.js'
import { type BackendBalancer, type BalancerOptions, createBalancer } from '../../src/balance/balancer.js'
import type { LoadReport } from '../../src/balance/load-reports/engines.js'
import type { BackendLease } from '../../src/balance/types.js'
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

function lease(b: BackendBalancer, model?: string): BackendLease {
  const result = b.acquire(model === undefined ? {} : { model }, none)
  if (result instanceof Promise) throw new Error('expected a synchronous lease')
  return result
}

/** `n` picks for `model`, each finished before the next, so none adds load. */
function picks(b: BackendBalancer, n: number, model?: string): string[] {
  const ids: string[] = []
  for (let i = 0; i < n; i++) {
    const l = lease(b, model)
    ids.push(l.backend.id)
    l.finish({ ok: true, latencyMs: 1 })
  }
  return ids
}

interface Lora {
  running?: string[]
  waiting?: string[]
  maxLora?: number
}

/** A report set by hand, fresh unless `stale`; `undefined` is none yet. */
function report(
  backend: BackendState,
  value: (Partial<LoadReport> & { adapters?: Lora }) | undefined,
  stale = false,
): void {
  let full: LoadReport | undefined
  if (value !== undefined) {
    const { adapters, ...rest } = value
    const running = new Set(adapters?.running ?? [])
    const waiting = new Set(adapters?.waiting ?? [])
    full = {
      waiting: 0,
      running: 0,
      kvUsage: 0,
      at: 0,
      ...rest,
      lora:
        adapters === undefined
          ? undefined
          : { running, waiting, adapters: new Set([...running, ...waiting]), maxLora: adapters.maxLora },
    }
  }
  const fresh = full !== undefined && !stale
  const source: LoadReportSource = {
    current: () => (fresh ? full : undefined),
    state: {
      report: full,
      ageMs: full ? 0 : undefined,
      stale: !fresh,
      scrapes: 1,
      failures: fresh ? 0 : 1,
      consecutiveFailures: fresh ? 0 : 1,
      lastError: fresh ? undefined : 'HTTP 500',
    },
  }
  backend.reports = source
  backend.requestsAtReport = backend.totalRequests
}

function three(options: Partial<BalancerOptions> = {}): [BackendBalancer, BackendState[]] {
  const b = balancer({ backends: backendConfigs([1, 1, 1]), loraAffinity: true, ...options })
  return [b, b.registry.list() as BackendState[]]
}

describe('loraAffinity', () => {
  it('sends a request for an adapter to the backends that run it or have it waiting, under any strategy', () => {
    for (const strategy of ['round-robin', 'least-load', 'random', 'prefix-affinity'] as const) {
      const [b, [A, B, C]] = three({ strategy })
      report(A!, { running: 1, adapters: { running: ['x'], maxLora: 2 } })
      report(B!, { running: 1, adapters: { running: ['y'], waiting: ['x'], maxLora: 2 } })
      report(C!, { running: 0, adapters: { maxLora: 2 } })
      // Round robin alone would send every third to C.
      expect(
        picks(b, 6, 'x').filter((id) => id === 'C'),
        strategy,
      ).toEqual([])
    }
  })

  it('leaves the base model, and an adapter no report lists, to the strategy', () => {
    const [b, [A, B, C]] = three()
    report(A!, { adapters: { running: ['x'], maxLora: 2 } })
    report(B!, { adapters: { running: ['y'], maxLora: 2 } })
    report(C!, { adapters: { maxLora: 2 } })
    expect(picks(b, 3, 'base')).toEqual(['A', 'B', 'C'])
    expect(picks(b, 3, 'z')).toEqual(['A', 'B', 'C'])
    expect(picks(b, 3)).toEqual(['A', 'B', 'C'])
  })

  it('is off unless asked for', () => {
    const b = balancer({ backends: backendConfigs([1, 1]) })
    const [A, B] = b.registry.list() as BackendState[]
    report(A!, { adapters: { running: ['x'], maxLora: 1 } })
    report(B!, { adapters: { maxLora: 1 } })
    expect(b.loraAffinity).toBeNull()
    expect(picks(b, 4, 'x')).toEqual(['A', 'B', 'A', 'B'])
  })

  it('yields to load past the bound, as prefix-affinity does', () => {
    const [b, [A, B, C]] = three({ strategy: 'least-load' })
    // Loads 2, 0, 0: the bound is ⌈1.5 × 3 / 3⌉ = 2, and A would hold a third.
    report(A!, { running: 2, adapters: { running: ['x'], maxLora: 2 } })
    report(B!, { running: 0, adapters: { maxLora: 2 } })
    report(C!, { running: 0, adapters: { maxLora: 2 } })
    expect(lease(b, 'x').backend.id).not.toBe('A')
    // A larger loadFactor keeps it on A.
    const [loose, [D, E, F]] = three({ strategy: 'least-load', loraAffinity: { loadFactor: 2 } })
    report(D!, { running: 2, adapters: { running: ['x'], maxLora: 2 } })
    report(E!, { running: 0, adapters: { maxLora: 2 } })
    report(F!, { running: 0, adapters: { maxLora: 2 } })
    expect(lease(loose, 'x').backend.id).toBe('A')
  })

  it('avoids a backend whose adapter slots are all taken by others, for an adapter running elsewhere', () => {
    const [b, [A, B, C]] = three({ strategy: 'least-load' })
    // A runs x but is past the bound; B holds max_lora other adapters (one waiting); C has room.
    report(A!, { running: 9, adapters: { running: ['x'], maxLora: 2 } })
    report(B!, { running: 0, adapters: { running: ['y'], waiting: ['z'], maxLora: 2 } })
    report(C!, { running: 1, adapters: { running: ['y'], maxLora: 2 } })
    expect(picks(b, 4, 'x')).toEqual(['C', 'C', 'C', 'C'])
    // The base model needs no slot: least-load picks the idle B.
    expect(lease(b, 'base').backend.id).toBe('B')
  })

  it('knows an adapter by a backend that is not a candidate, and keeps the full one only when nothing else is in bound', () => {
    const b = balancer({
      backends: backendConfigs([1, 1, 1]).map((c, i) => (i === 0 ? { ...c, maxConcurrency: 1 } : c)),
      strategy: 'least-load',
      loraAffinity: true,
    })
    const [A, B, C] = b.registry.list() as BackendState[]
    report(A!, { adapters: { running: ['x'], maxLora: 1 } })
    report(B!, { running: 0, adapters: { running: ['y'], maxLora: 1 } })
    report(C!, { running: 1, adapters: { maxLora: 1 } })
    const held = lease(b, 'x')
    expect(held.backend.id).toBe('A')
    // A is at maxConcurrency: B's one slot holds y, so x goes to C though B is idler.
    expect(lease(b, 'x').backend.id).toBe('C')
    held.finish({ ok: true, latencyMs: 1 })
  })

  it('has no preference on stale or absent reports, and neither prefers nor avoids a backend without one', () => {
    const [b, [A, B, C]] = three()
    // A's last report listed x, but it is stale.
    report(A!, { adapters: { running: ['x'], maxLora: 1 } }, true)
    report(B!, { running: 0 })
    report(C!, undefined)
    expect(picks(b, 3, 'x')).toEqual(['A', 'B', 'C'])
    // C lists x now; A (stale) and B (no LoRA in its report) are not avoided for y, which nobody runs.
    report(C!, { adapters: { running: ['x'], maxLora: 1 } })
    expect(picks(b, 3, 'x')).toEqual(['C', 'C', 'C'])
    expect(picks(b, 3, 'y')).toEqual(['A', 'B', 'C'])
  })

  it('narrows within the candidates only: a holder that is full or ejected is not waited for', () => {
    const b = balancer({
      backends: backendConfigs([1, 1]).map((c, i) => (i === 1 ? { ...c, maxConcurrency: 1 } : c)),
      loraAffinity: true,
    })
    const [A, B] = b.registry.list() as BackendState[]
    report(A!, { adapters: { maxLora: 4 } })
    report(B!, { adapters: { running: ['x'], maxLora: 4 } })
    const first = lease(b, 'x')
    expect(first.backend.id).toBe('B')
    // B is at maxConcurrency: the request goes to A at once rather than wait for B.
    expect(lease(b, 'x').backend.id).toBe('A')
    first.finish({ ok: true, latencyMs: 1 })
  })

  it('checks its option at startup', () => {
    const bad = [{ loadFactor: -1 }, { loadfactor: 1 }, 'yes', 1]
    for (const loraAffinity of bad) {
      expect(() => createBalancer({ loraAffinity } as never), JSON.stringify(loraAffinity)).toThrow(
        OptionError,
      )
    }
    expect(() => createBalancer({ loraAffinity: 'yes' } as never)).toThrow(
      'option "loraAffinity" must be true, false or { loadFactor }; got "yes"',
    )
    expect(balancer({ loraAffinity: { loadFactor: 1 } }).loraAffinity?.loadFactor).toBe(1)
    expect(balancer({ loraAffinity: true }).loraAffinity?.loadFactor).toBe(0.5)
    expect(balancer({ loraAffinity: false }).loraAffinity).toBeNull()
  })
})
