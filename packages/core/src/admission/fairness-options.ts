import { optionNames } from '../option-names.js'
import {
  checkNumber,
  checkOptionalFunction,
  checkOptionGroup,
  describeValue,
  fail,
  failWith,
  isPlainObject,
} from '../validation.js'

/** Named priority classes; a number works too (higher is served first, below 0 is sheddable). */
export type PriorityClass = 'critical' | 'standard' | 'sheddable'

export const PRIORITY_LEVELS: Readonly<Record<PriorityClass, number>> = {
  critical: 1,
  standard: 0,
  sheddable: -1,
}

/**
 * Fair sharing of full backends between tenants (`fairness` option). Every function here is
 * called only for a request that has to wait: a request that finds a free backend pays nothing.
 */
export interface FairnessOptions<Req> {
  /**
   * Who a request belongs to. Default: who the client provably is, the key the rate limits count
   * it under — the plugin-wide `keyGenerator`'s answer (`apiKeyKey`: a hash of its API key), else
   * its address (`request.ip`, IPv6 by /64). A function of the request: the app's own answer. A
   * header name: that header, only with `trustTenantHeader: true`.
   */
  tenant?: string | ((request: Req) => string | undefined)
  /**
   * Take `tenant` as a header name (`x-tenant-id` when left out) and believe it. Only for a header
   * that something in front of the gateway sets after authenticating the client, and replaces when
   * a client sends its own: otherwise any client names itself any tenant, a weighted one included.
   * Default false.
   */
  trustTenantHeader?: boolean
  /**
   * A tenant's relative share: a table naming tenants (any other gets 1) or a function of an
   * established tenant (answer 1 for an id you do not know). Tenants not served before share
   * one class of weight 1. Default 1 each.
   */
  weights?: Readonly<Record<string, number>> | ((tenant: string) => number)
  /** The request's class: `critical`, `standard` (default), `sheddable`, or a number. */
  priority?: (request: Req) => PriorityClass | number
  /**
   * What one request costs its tenant's share, e.g. its estimated tokens. Default 1, so shares
   * are counted in requests.
   */
  cost?: (request: Req) => number
  /**
   * Header in which a client says how many milliseconds its request may wait for a backend (it
   * never waits longer than `queue.timeoutMs`); `false` ignores clients. Default `x-request-deadline-ms`.
   */
  deadlineHeader?: string | false
  /** Requests one tenant may have waiting. Default: `queue.size`. */
  maxWaitingPerTenant?: number
  /**
   * Tenants remembered after their queue empties: for the snapshot, and as established (a
   * forgotten one shares the new class again until served). Default 1 000.
   */
  maxTenants?: number
  /** A tenant with nothing waiting is forgotten after this long. Default 60 000 ms. */
  idleMs?: number
}

export const FAIRNESS_OPTION_NAMES = optionNames<FairnessOptions<unknown>>()([
  'tenant',
  'trustTenantHeader',
  'weights',
  'priority',
  'cost',
  'deadlineHeader',
  'maxWaitingPerTenant',
  'maxTenants',
  'idleMs',
])

/** The `fairness` option after validation, with every default filled in. */
export interface ValidatedFairness {
  /** Set only with `trustTenantHeader`; with neither it nor `tenantFn`, the tenant is the client's key. */
  tenantHeader: string | undefined
  tenantFn: ((request: unknown) => unknown) | undefined
  weightTable: ReadonlyMap<string, number> | undefined
  weightFn: ((tenant: string) => unknown) | undefined
  priorityFn: ((request: unknown) => unknown) | undefined
  costFn: ((request: unknown) => unknown) | undefined
  deadlineHeader: string | undefined
  maxWaitingPerTenant: number
  maxTenants: number
  idleMs: number
}

function checkHeaderName(option: string, value: unknown): string {
  if (typeof value !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value)) {
    fail(option, 'a header name like "x-tenant-id"', value)
  }
  return value.toLowerCase()
}

/** Checks `fairness` at startup; `queueSize` is the overall cap the per-tenant one defaults to. */
export function validateFairness(value: unknown, queueSize: number): ValidatedFairness {
  checkOptionGroup('fairness', value, FAIRNESS_OPTION_NAMES)
  const o = (value ?? {}) as FairnessOptions<unknown>
  let tenantHeader: string | undefined
  let tenantFn: ValidatedFairness['tenantFn']
  const trusted = o.trustTenantHeader
  if (trusted !== undefined && typeof trusted !== 'boolean')
    fail('fairness.trustTenantHeader', 'true or false', trusted)
  if (typeof o.tenant === 'function') {
    if (trusted === true)
      failWith('fairness.trustTenantHeader', 'applies to a header name in fairness.tenant, not to a function')
    tenantFn = o.tenant
  } else if (trusted === true) {
    tenantHeader = checkHeaderName('fairness.tenant', o.tenant ?? 'x-tenant-id')
  } else if (o.tenant !== undefined) {
    checkHeaderName('fairness.tenant', o.tenant)
    failWith(
      'fairness.tenant',
      `names a header (${describeValue(o.tenant)}) that any client can set to any tenant. Leave tenant out ` +
        'to share by the client key (keyGenerator, else the address), or add trustTenantHeader: true ' +
        'when a proxy in front sets that header after authenticating the client',
    )
  }

  let weightTable: Map<string, number> | undefined
  let weightFn: ValidatedFairness['weightFn']
  if (typeof o.weights === 'function') weightFn = o.weights
  else if (o.weights !== undefined) {
    if (!isPlainObject(o.weights))
      fail('fairness.weights', 'an object like { gold: 3 } or a function', o.weights)
    weightTable = new Map()
    for (const [tenant, weight] of Object.entries(o.weights)) {
      if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
        fail(`fairness.weights[${describeValue(tenant)}]`, 'a positive number', weight)
      }
      weightTable.set(tenant, weight)
    }
  }
  checkOptionalFunction('fairness.priority', o.priority)
  checkOptionalFunction('fairness.cost', o.cost)

  let deadlineHeader: string | undefined
  if (o.deadlineHeader !== false)
    deadlineHeader = checkHeaderName('fairness.deadlineHeader', o.deadlineHeader ?? 'x-request-deadline-ms')

  return {
    tenantHeader,
    tenantFn,
    weightTable,
    weightFn,
    priorityFn: o.priority,
    costFn: o.cost,
    deadlineHeader,
    maxWaitingPerTenant: checkNumber(
      'fairness.maxWaitingPerTenant',
      o.maxWaitingPerTenant,
      Math.max(1, queueSize),
      {
        integer: true,
        min: 1,
      },
    ),
    maxTenants: checkNumber('fairness.maxTenants', o.maxTenants, 1_000, { integer: true, min: 1 }),
    idleMs: checkNumber('fairness.idleMs', o.idleMs, 60_000, { min: 0 }),
  }
}
