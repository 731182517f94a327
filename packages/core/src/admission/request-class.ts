import type { IncomingMessage } from 'node:http'
import { BalancerError } from '../balance/errors.js'
import { clientKeyFromIp } from '../limits/ip-key.js'
import { CALLBACK_FAILED, type UserCallbacks } from '../user-callback.js'
import { describeValue } from '../validation.js'
import { PRIORITY_LEVELS, type ValidatedFairness } from './fairness-options.js'

/**
 * What the admission layer may read about a waiting request: the raw request for headers, and
 * the framework's own request object (Fastify request, Express req) for the user's functions.
 * The forwarder's `ForwardRequest` is one.
 */
export interface WaitSubject {
  req?: IncomingMessage
  request?: unknown
  /** The client's address with the app's trust-proxy setting applied; default the socket's. */
  clientIp?: string
  /** The key the route's rate limits counted the request under, when limits ran. */
  clientKey?: string
}

/** Who the client is, as the rate limits key it: the plugin-wide `keyGenerator`. */
export type ClientKey = (request: never) => unknown

/** Where a waiting request stands in the fair queue. */
export interface RequestClass {
  tenant: string
  priority: number
  cost: number
  /** How long it may wait: the queue timeout, or less when the client said so. */
  waitMs: number
}

/** Tenant ids are client input: a longer one is cut, so a key is never larger than this. */
export const MAX_TENANT_CHARS = 256

function headerValue(req: IncomingMessage | undefined, name: string): string | undefined {
  const value = req?.headers[name]
  return Array.isArray(value) ? value[0] : value
}

function isThenable(value: unknown): boolean {
  return (
    value !== null &&
    (typeof value === 'object' || typeof value === 'function') &&
    typeof (value as { then?: unknown }).then === 'function'
  )
}

/**
 * Turns a request that has to wait into its tenant, priority, cost and longest wait. A user
 * function that throws or returns something unusable is logged once and its default used: a
 * broken callback must not turn into failed requests.
 */
export class RequestClassifier {
  readonly #fairness: ValidatedFairness
  readonly #callbacks: UserCallbacks
  readonly #timeoutMs: number
  readonly #clientKey: ((request: unknown) => unknown) | undefined

  constructor(
    fairness: ValidatedFairness,
    callbacks: UserCallbacks,
    timeoutMs: number,
    clientKey: ClientKey | undefined,
  ) {
    this.#fairness = fairness
    this.#callbacks = callbacks
    this.#timeoutMs = timeoutMs
    this.#clientKey = clientKey as ((request: unknown) => unknown) | undefined
  }

  /** Throws a 400 BalancerError when the deadline header is malformed. */
  classify(subject: WaitSubject): RequestClass {
    const f = this.#fairness
    return {
      tenant: this.#tenant(subject),
      priority: f.priorityFn ? this.#priority(f.priorityFn, subject.request) : PRIORITY_LEVELS.standard,
      cost: f.costFn ? this.#cost(f.costFn, subject.request) : 1,
      waitMs: this.#waitMs(subject.req),
    }
  }

  /** Whether the configuration names this tenant (the `weights` table): it is never new. */
  named(tenant: string): boolean {
    return this.#fairness.weightTable?.has(tenant) ?? false
  }

  /** An established tenant's weight, asked once when its record is made. */
  weight(tenant: string): number {
    const f = this.#fairness
    if (f.weightTable) return f.weightTable.get(tenant) ?? 1
    if (!f.weightFn) return 1
    const weight = this.#usable('fairness.weights', f.weightFn, tenant, 'a positive number')
    return typeof weight === 'number' && Number.isFinite(weight) && weight > 0
      ? weight
      : this.#bad('fairness.weights', weight, 1)
  }

  #tenant(subject: WaitSubject): string {
    const f = this.#fairness
    let tenant: unknown
    if (f.tenantHeader !== undefined) tenant = headerValue(subject.req, f.tenantHeader)
    else if (f.tenantFn) tenant = this.#usable('fairness.tenant', f.tenantFn, subject.request, 'a string')
    else tenant = this.#client(subject)
    if (typeof tenant !== 'string') return ''
    return tenant.length > MAX_TENANT_CHARS ? tenant.slice(0, MAX_TENANT_CHARS) : tenant
  }

  /**
   * The key the rate limits count this client under: the one its route's limits used, else the
   * plugin-wide keyGenerator's, else its address. A keyGenerator that fails or answers with a
   * promise (the queue places a request at once) is logged once and the address used instead.
   */
  #client(subject: WaitSubject): string {
    if (subject.clientKey !== undefined && subject.clientKey !== '') return subject.clientKey
    if (this.#clientKey !== undefined) {
      const kind = 'fairness tenant (keyGenerator)'
      const key = this.#callbacks.call(kind, this.#clientKey, subject.request)
      if (typeof key === 'string' && key !== '') return key
      if (isThenable(key)) {
        this.#callbacks.failed(
          kind,
          new Error(
            'it returned a promise, and a waiting request is placed at once; the client address is its tenant',
          ),
        )
      } else if (key !== CALLBACK_FAILED) {
        this.#callbacks.failed(
          kind,
          new Error(`it returned ${describeValue(key)}; the client address is its tenant`),
        )
      }
    }
    return clientKeyFromIp(subject.clientIp ?? subject.req?.socket?.remoteAddress)
  }

  #priority(fn: (request: unknown) => unknown, request: unknown): number {
    const value = this.#usable('fairness.priority', fn, request, 'a priority')
    if (value === CALLBACK_FAILED) return PRIORITY_LEVELS.standard
    if (typeof value === 'number' && Number.isFinite(value)) return value
    if (typeof value === 'string' && Object.hasOwn(PRIORITY_LEVELS, value))
      return PRIORITY_LEVELS[value as keyof typeof PRIORITY_LEVELS]
    return this.#bad('fairness.priority', value, PRIORITY_LEVELS.standard)
  }

  #cost(fn: (request: unknown) => unknown, request: unknown): number {
    const value = this.#usable('fairness.cost', fn, request, 'a number')
    if (value === CALLBACK_FAILED) return 1
    return typeof value === 'number' && Number.isFinite(value) && value > 0
      ? value
      : this.#bad('fairness.cost', value, 1)
  }

  #waitMs(req: IncomingMessage | undefined): number {
    const header = this.#fairness.deadlineHeader
    const raw = header === undefined ? undefined : headerValue(req, header)
    if (raw === undefined) return this.#timeoutMs
    if (!/^\s*\d{1,15}\s*$/.test(raw)) {
      throw new BalancerError(
        `The ${header} header must be a whole number of milliseconds; got ${describeValue(raw)}`,
        400,
        'invalid_deadline',
      )
    }
    return Math.min(Number(raw), this.#timeoutMs)
  }

  /** The function's answer, or CALLBACK_FAILED when it threw or answered with a promise. */
  #usable<A>(kind: string, fn: (arg: A) => unknown, arg: A, expected: string): unknown {
    const value = this.#callbacks.call(kind, fn, arg)
    if (!isThenable(value)) return value
    this.#callbacks.failed(kind, new Error(`it returned a promise; it must return ${expected} synchronously`))
    return CALLBACK_FAILED
  }

  #bad<T>(kind: string, value: unknown, fallback: T): T {
    if (value !== CALLBACK_FAILED)
      this.#callbacks.failed(kind, new Error(`it returned ${describeValue(value)}, which is not usable`))
    return fallback
  }
}
