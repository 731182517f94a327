import type { Registry } from 'prom-client'
import type { BackendBalancer } from '../balance/balancer.js'
import { PrecisePrefixPicker } from '../balance/pickers/precise-prefix.js'

type PromClient = typeof import('prom-client')

/**
 * The KV-event feeds of `precise-prefix`, read when Prometheus scrapes: one series per backend
 * with `kvEvents` (labels from the configuration). Nothing is registered under another strategy.
 */
export function registerKvEventMetrics(
  prom: PromClient,
  registers: Registry[],
  balancer: BackendBalancer,
): void {
  const picker = balancer.picker
  if (!(picker instanceof PrecisePrefixPicker)) return
  new prom.Counter({
    name: 'tollgate_kv_events_gaps_total',
    help: "Sequence gaps in a backend's KV-event feed; each cleared its view unless the replay socket filled it",
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset()
      for (const f of picker.snapshot()) this.inc({ backend: f.backend }, f.gaps)
    },
  })
  new prom.Counter({
    name: 'tollgate_kv_events_cleared_total',
    help: "Times a backend's KV view was cleared: events lost without replay, or the engine restarted",
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset()
      for (const f of picker.snapshot()) this.inc({ backend: f.backend }, f.cleared)
    },
  })
  new prom.Gauge({
    name: 'tollgate_kv_index_blocks',
    help: "Blocks of a backend's KV cache indexed from its events",
    labelNames: ['backend'],
    registers,
    collect() {
      this.reset()
      for (const f of picker.snapshot()) this.set({ backend: f.backend }, f.blocks)
    },
  })
  new prom.Counter({
    name: 'tollgate_prefix_tokenize_failures_total',
    help: 'Requests routed by the approximate prefix index because their tokens were not had in time',
    registers,
    collect() {
      this.reset()
      this.inc(picker.stats.tokenizeFailures)
    },
  })
}
