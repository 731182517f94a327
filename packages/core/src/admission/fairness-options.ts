import { optionNames } from '../option-names.js'
import {
  checkNumber,
  checkOptionalFunction,
  checkOptionGroup,
  describeValue,
  fail,
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
  /** Who a request belongs to: a header name, or a function of the request. Default `x-tenant-id`. */
  tenant?: string | ((request: Req) => string | undefined)
  /** A tenant's relative share: a table (missing tenants get 1) or a function of the tenant. Default 1 each. */
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
  /** Tenants remembered for the snapshot after their queue empties. Default 1 000. */
  maxTenants?: number
  /** A tenant with nothing waiting is forgotten after this long. Default 60 000 ms. */
  idleMs?: number
}

export const FAIRNESS_OPTION_NAMES = optionNames<FairnessOptions<unknown>>()([
  'tenant',
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
  if (typeof o.tenant === 'function') tenantFn = o.tenant
  else tenantHeader = checkHeaderName('fairness.tenant', o.tenant ?? 'x-tenant-id')

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
