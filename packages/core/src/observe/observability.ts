import type { BackendBalancer } from '../balance/balancer.js'
import type { Logger } from '../limits/insured-store.js'
import { optionNames } from '../option-names.js'
import { checkOptionGroup, fail } from '../validation.js'
import { combineEvents, type GatewayEvents } from './events.js'
import { GatewayLog } from './gateway-log.js'
import { type MetricsOptions, PrometheusMetrics } from './prometheus-metrics.js'
import { RequestTracing, type TracingOptions } from './tracing.js'

/** What tollgate reports about itself, shared by both adapters. */
export interface ObserveOptions {
  /** Prometheus metrics (prom-client): `true`, or `{ registry }` to register in a registry of yours. Default off. */
  metrics?: boolean | MetricsOptions
  /** OpenTelemetry spans per forwarded request and attempt: `true`, or `{ tracer }`. Default off. */
  tracing?: boolean | TracingOptions
  /** One log line per forwarded request (method, path without query, model, backend, attempts, status, time). Default false. */
  accessLog?: boolean
  /**
   * Consumers of your own of the same events metrics and tracing read (a live status view, an
   * audit feed): each hears every forwarded request, limit decision and backend change. Default none.
   */
  observers?: readonly GatewayEvents[]
}

export const OBSERVE_OPTION_NAMES = optionNames<ObserveOptions>()([
  'metrics',
  'tracing',
  'accessLog',
  'observers',
])
const METRICS_OPTION_NAMES = optionNames<MetricsOptions>()(['registry'])
const TRACING_OPTION_NAMES = optionNames<TracingOptions>()(['tracer'])

/**
 * The consumers of `GatewayEvents` the options ask for, combined. Backend state changes are
 * always logged; only metrics, tracing or the access log make each request report
 * (`perRequest`), so without them a request pays nothing.
 */
export class Observability {
  readonly events: GatewayEvents
  readonly perRequest: boolean
  readonly metrics: PrometheusMetrics | undefined
  /** Whether some consumer counts limit decisions (metrics or an observer): routes report them only then. */
  readonly decisions: boolean

  constructor(options: ObserveOptions, logger: Logger) {
    const { metrics, tracing, accessLog, observers } = options
    if (metrics !== undefined && typeof metrics !== 'boolean')
      checkOptionGroup('metrics', metrics, METRICS_OPTION_NAMES)
    if (tracing !== undefined && typeof tracing !== 'boolean')
      checkOptionGroup('tracing', tracing, TRACING_OPTION_NAMES)
    if (accessLog !== undefined && typeof accessLog !== 'boolean')
      fail('accessLog', 'true or false', accessLog)
    if (
      observers !== undefined &&
      (!Array.isArray(observers) ||
        observers.some((o) => typeof (o as Partial<GatewayEvents>)?.forwardStart !== 'function'))
    )
      fail(
        'observers',
        'a list of GatewayEvents consumers (forwardStart, limitDecision, backendChange)',
        observers,
      )
    const registry = typeof metrics === 'object' ? metrics.registry : undefined
    if (registry !== undefined && (typeof registry !== 'object' || typeof registry.metrics !== 'function'))
      fail('metrics.registry', "a prom-client Registry (e.g. `register` from 'prom-client')", registry)
    const tracer = typeof tracing === 'object' ? tracing.tracer : undefined
    if (tracer !== undefined && typeof tracer?.startSpan !== 'function')
      fail('tracing.tracer', 'an OpenTelemetry Tracer', tracer)

    this.metrics =
      metrics === undefined || metrics === false ? undefined : new PrometheusMetrics({ registry })
    const consumers: GatewayEvents[] = [new GatewayLog(logger, accessLog === true)]
    if (this.metrics !== undefined) consumers.push(this.metrics)
    if (tracing !== undefined && tracing !== false) consumers.push(new RequestTracing({ tracer }))
    if (observers !== undefined) consumers.push(...observers)
    this.events = combineEvents(consumers)!
    this.perRequest = consumers.length > 1 || accessLog === true
    this.decisions = this.metrics !== undefined || (observers?.length ?? 0) > 0
  }

  /** Gives the metrics the balancer their scrape-time gauges read. */
  attach(balancer: BackendBalancer): void {
    this.metrics?.attach(balancer)
  }
}
