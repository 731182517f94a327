import type { Registry } from 'prom-client'
import type { BackendBalancer } from '../balance/balancer.js'
import type { BackendStatus } from '../balance/types.js'
import { registerKvEventMetrics } from './kv-event-metrics.js'

type PromClient = typeof import('prom-client')

const STATUSES: readonly BackendStatus[] = ['healthy', 'ejected', 'unhealthy', 'cooling-down', 'draining']

/**
 * Gauges read from the balancer when Prometheus scrapes, so the request path keeps no copy of
 * them. Labels are backend ids and zone names, both from the configuration.
 */
export function registerBalancerGauges(
  prom: PromClient,
  registry: Registry,
  balancer: BackendBalancer,
): void {
  const registers = [registry]
  new prom.Gauge({
    name: 'tollgate_queue_length',
    help: 'Requests waiting for a backend below its maxConcurrency',
    registers,
    collect() {
      this.set(balancer.queueLength)
    },
  })
  new prom.Gauge({
    name: 'tollgate_backend_in_flight',
    help: 'Attempts in flight per backend',
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset()
      for (const b of balancer.registry.list()) this.set({ backend: b.id }, b.ownInFlight)
    },
  })
  new prom.Gauge({
    name: 'tollgate_backend_queued',
    help: 'Queued requests each backend could serve',
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset()
      for (const b of balancer.registry.list()) this.set({ backend: b.id }, b.queued)
    },
  })
  new prom.Gauge({
    name: 'tollgate_backend_status',
    help: "Each backend's state: 1 for the one it is in (healthy, ejected, unhealthy, cooling-down, draining)",
    labelNames: ['backend', 'status'],
    registers,
    collect() {
      this.reset()
      const now = Date.now()
      for (const b of balancer.registry.list()) {
        const current = b.status(now)
        for (const status of STATUSES) this.set({ backend: b.id, status }, status === current ? 1 : 0)
      }
    },
  })
  registerReportGauges(prom, registers, balancer)
  registerZoneGauges(prom, registers, balancer)
  registerKvEventMetrics(prom, registers, balancer)
}

/** Only backends with `metrics` have a report; a backend without one has no sample. */
function registerReportGauges(prom: PromClient, registers: Registry[], balancer: BackendBalancer): void {
  new prom.Gauge({
    name: 'tollgate_backend_report_age_seconds',
    help: "Seconds since the backend's last good load report (none before the first)",
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset()
      for (const b of balancer.snapshot()) {
        const age = b.loadReport?.ageMs
        if (age != null) this.set({ backend: b.id }, age / 1000)
      }
    },
  })
  new prom.Gauge({
    name: 'tollgate_backend_report_stale',
    help: "1 while the backend's load report is not used for routing: none yet, too old, or the last scrape failed",
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset()
      for (const b of balancer.snapshot()) {
        if (b.loadReport !== null) this.set({ backend: b.id }, b.loadReport.stale ? 1 : 0)
      }
    },
  })
}

/** Backends without a `zone` are counted under zone "none". */
function registerZoneGauges(prom: PromClient, registers: Registry[], balancer: BackendBalancer): void {
  // Counters read at scrape time from counts that only grow (removed backends' requests are kept).
  new prom.Counter({
    name: 'tollgate_zone_requests_total',
    help: 'Requests sent to the backends of each zone',
    labelNames: ['zone'],
    registers,
    collect() {
      this.reset()
      for (const [zone, t] of balancer.zoneTotals()) this.inc({ zone: zone ?? 'none' }, t.requests)
    },
  })
  new prom.Counter({
    name: 'tollgate_zone_spilled_requests_total',
    help: 'Of those, requests sent to the zone because every zone ranked before it had no room',
    labelNames: ['zone'],
    registers,
    collect() {
      this.reset()
      for (const [zone, t] of balancer.zoneTotals()) this.inc({ zone: zone ?? 'none' }, t.spilled)
    },
  })
  new prom.Gauge({
    name: 'tollgate_zone_available_backends',
    help: 'Backends of each zone taking requests now',
    labelNames: ['zone'],
    registers,
    collect() {
      this.reset()
      for (const z of balancer.zoneSnapshot()) this.set({ zone: z.zone ?? 'none' }, z.available)
    },
  })
}
