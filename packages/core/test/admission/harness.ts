import type { IncomingMessage } from 'node:http'
import type { FairnessOptions } from '../../src/admission/index.js'
import { type BackendBalancer, type BalancerOptions, createBalancer } from '../../src/balance/balancer.js'
import type { BackendLease } from '../../src/balance/types.js'
import { UserCallbacks } from '../../src/user-callback.js'

export const none = new Set<string>()
const open: BackendBalancer[] = []

/** Closes every balancer made since the last call; for `afterEach`. */
export async function closeHarnesses(): Promise<void> {
  await Promise.all(open.splice(0).map((b) => b.close()))
}

export function track(b: BackendBalancer): BackendBalancer {
  open.push(b)
  return b
}

/** What one waiting request carries, apart from its label: headers, framework request, address. */
export interface Subject {
  headers?: Record<string, string>
  request?: unknown
  clientIp?: string
}

export interface Harness {
  b: BackendBalancer
  /** Holds the only slot until `next()` frees it. */
  ask(tenant: string, headers?: Record<string, string>, request?: unknown): Promise<string>
  /** A request labelled `label` (what `serve` reports) with a subject of the test's making. */
  askAs(label: string, subject: Subject): Promise<string>
  /** Frees the slot `n` times and returns the labels served, in order. */
  serve(n: number): Promise<string[]>
  /** Serves one request of each tenant, so each has a share of its own from then on. */
  establish(...tenants: string[]): Promise<void>
  warnings: string[]
}

/**
 * One backend with one slot, already taken: every request asked waits in the fair queue. The
 * tenant is the `x-tenant-id` header (trusted) unless the test names `tenant`, even as undefined.
 */
export function harness(fairness: FairnessOptions<never>, options: Partial<BalancerOptions> = {}): Harness {
  const warnings: string[] = []
  const b = track(
    createBalancer({
      backends: [{ url: 'http://127.0.0.1:1', id: 'gpu', maxConcurrency: 1 }],
      fairness: 'tenant' in fairness ? fairness : { trustTenantHeader: true, ...fairness },
      callbacks: new UserCallbacks({ warn: (m: string) => warnings.push(m) }),
      ...options,
    }),
  )
  let held = b.acquire({}, none) as BackendLease
  const served: string[] = []
  const askAs = (label: string, subject: Subject) => {
    const req = { headers: subject.headers ?? {} } as unknown as IncomingMessage
    const answer = (async () => {
      held = await b.acquire({ req, request: subject.request, clientIp: subject.clientIp }, none)
      served.push(label)
      return label
    })()
    // Requests still waiting when the test ends are failed by close(); the test awaits the ones it checks.
    answer.catch(() => {})
    return answer
  }
  const ask = (tenant: string, headers: Record<string, string> = {}, request?: unknown) =>
    askAs(tenant, { headers: { 'x-tenant-id': tenant, ...headers }, request })
  const serve = async (n: number) => {
    const from = served.length
    for (let i = 0; i < n; i++) {
      held.finish({ ok: true, latencyMs: 1 })
      await Promise.resolve()
      await Promise.resolve()
    }
    return served.slice(from)
  }
  const establish = async (...tenants: string[]) => {
    for (const tenant of tenants) void ask(tenant)
    await serve(tenants.length)
  }
  return { b, ask, askAs, serve, establish, warnings }
}

export function count(list: string[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const item of list) counts[item] = (counts[item] ?? 0) + 1
  return counts
}
