import type { ClientKey, FairnessOptions } from '../admission/index.js'
import type { GatewayEvents } from '../observe/events.js'
import { optionNames } from '../option-names.js'
import type { UserCallbacks } from '../user-callback.js'
import { checkNumber, checkObject, checkOptionGroup } from '../validation.js'
import { ACTIVE_CHECK_OPTION_NAMES, type ActiveHealthCheckOptions } from './active-health-check.js'
import { type ConcurrencyQueueOptions, QUEUE_OPTION_NAMES } from './concurrency-queue.js'
import { LOAD_REPORT_OPTION_NAMES, type LoadReportOptions } from './load-reports/backend-scrapers.js'
import type { LoraAffinityOptions } from './lora-affinity.js'
import { OUTLIER_OPTION_NAMES, type OutlierDetectorOptions } from './outlier-detector.js'
import type { ConsistentHashOptions } from './pickers/index.js'
import type { PickerFunction, RandomSource, StrategyName } from './pickers/picker.js'
import { PRECISE_PREFIX_OPTION_NAMES, type PrecisePrefixOptions } from './pickers/precise-prefix.js'
import { PREFIX_AFFINITY_OPTION_NAMES, type PrefixAffinityOptions } from './pickers/prefix-affinity.js'
import type { RoutingStateOptions } from './routing-state/routing-state.js'
import { checkRoutingStateOption } from './routing-state/routing-state-option.js'
import type { BackendConfig } from './types.js'

export interface HealthOptions {
  /** Passive outlier ejection; on by default, `false` turns it off. */
  outlier?: OutlierDetectorOptions | false
  /** Active health checks; off unless given. */
  activeCheck?: ActiveHealthCheckOptions | false
  /** Longest cool-down a backend's Retry-After can impose. Default 60 000 ms. */
  maxCoolDownMs?: number
}

export interface BalancerOptions {
  backends?: readonly BackendConfig[]
  /** A strategy name or a custom picker function. Default `round-robin`. */
  strategy?: StrategyName | PickerFunction
  consistentHash?: ConsistentHashOptions
  /** Knobs of the `prefix-affinity` strategy. */
  prefixAffinity?: PrefixAffinityOptions
  /** Knobs of the `precise-prefix` strategy (its fallback, the approximate index, takes `prefixAffinity`). */
  precisePrefix?: PrecisePrefixOptions
  /** How backends with `metrics` are scraped, and when a report counts as saturated. */
  loadReports?: LoadReportOptions
  /**
   * A request naming a LoRA adapter as its `model` goes, among the candidates the strategy would
   * choose from, to those whose vLLM load report lists the adapter as running or waiting, while
   * they are within a load bound; backends whose adapter slots are all taken by others are
   * avoided. Needs `metrics: 'vllm'` on the backends. Default off.
   */
  loraAffinity?: boolean | LoraAffinityOptions
  /** This gateway's zone: backends in it are used first. Default none (zones play no part). */
  zone?: string
  /** Zones to spill to, in order, when the gateway's own zone has no room; other zones come after. */
  zonePreference?: string[]
  health?: HealthOptions
  queue?: ConcurrencyQueueOptions
  /** Fair shares of full backends between tenants, with priorities; without it the queue is FIFO. */
  fairness?: FairnessOptions<never>
  /** Who a client is when `fairness.tenant` is not set: the plugin-wide keyGenerator (else its address). */
  clientKey?: ClientKey
  /** Time constant of the peak-EWMA latency estimate. Default 10 000 ms. */
  latencyDecayMs?: number
  /**
   * A failed attempt counts as at least this slow in the latency estimate, so a backend that
   * fails fast does not look like the fastest one. Default 1 000 ms.
   */
  failurePenaltyMs?: number
  /** Clock in epoch milliseconds; injected by tests. */
  now?: () => number
  /** Uniform random source in [0, 1); injected by tests. */
  random?: RandomSource
  /** The guard a custom picker function is called through. */
  callbacks?: UserCallbacks
  /** Told when a backend is ejected, restored, or changes its active-check verdict. */
  events?: GatewayEvents
  /**
   * Shares what routing decides by with every gateway replica given the same Redis: capacity
   * (`maxConcurrency` is the backend's, across replicas), requests in flight and sent, the prefix
   * index. Without it each replica routes on its own state.
   */
  routingState?: RoutingStateOptions
}

const HEALTH_OPTION_NAMES = optionNames<HealthOptions>()(['outlier', 'activeCheck', 'maxCoolDownMs'])
const CONSISTENT_HASH_OPTION_NAMES = optionNames<ConsistentHashOptions>()(['loadFactor', 'virtualNodes'])

/**
 * Checks the option groups' keys and the consistent-hash numbers, before anything is built; each
 * piece checks its own values when it is created.
 */
export function checkBalancerOptionGroups(options: BalancerOptions): void {
  const raw: unknown = options
  checkObject('options', raw)
  checkOptionGroup('health', options.health, HEALTH_OPTION_NAMES)
  checkOptionGroup('health.outlier', options.health?.outlier, OUTLIER_OPTION_NAMES, true)
  checkOptionGroup('health.activeCheck', options.health?.activeCheck, ACTIVE_CHECK_OPTION_NAMES, true)
  checkOptionGroup('queue', options.queue, QUEUE_OPTION_NAMES)
  checkOptionGroup('consistentHash', options.consistentHash, CONSISTENT_HASH_OPTION_NAMES)
  checkNumber('consistentHash.loadFactor', options.consistentHash?.loadFactor, 0.25, { min: 0 })
  checkNumber('consistentHash.virtualNodes', options.consistentHash?.virtualNodes, 160, {
    integer: true,
    min: 1,
  })
  checkOptionGroup('prefixAffinity', options.prefixAffinity, PREFIX_AFFINITY_OPTION_NAMES)
  checkOptionGroup('precisePrefix', options.precisePrefix, PRECISE_PREFIX_OPTION_NAMES)
  checkOptionGroup('loadReports', options.loadReports, LOAD_REPORT_OPTION_NAMES)
  checkRoutingStateOption(options.routingState)
}

/** The balancer's own numbers, checked, with their defaults. */
export interface BalancerTimings {
  readonly failurePenaltyMs: number
  readonly maxCoolDownMs: number
  readonly latencyDecayMs: number
}

export function balancerTimings(options: BalancerOptions): BalancerTimings {
  const failurePenaltyMs = checkNumber('failurePenaltyMs', options.failurePenaltyMs, 1_000, { min: 0 })
  const maxCoolDownMs = checkNumber('health.maxCoolDownMs', options.health?.maxCoolDownMs, 60_000, { min: 0 })
  const latencyDecayMs = checkNumber('latencyDecayMs', options.latencyDecayMs, 10_000, {
    min: 0,
    minExclusive: true,
  })
  return { failurePenaltyMs, maxCoolDownMs, latencyDecayMs }
}
