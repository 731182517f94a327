import { createRequire } from 'node:module'
import type { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { BackendBalancer } from '../balance/balancer.js'
import type { AttemptOutcome, BackendTarget } from '../balance/types.js'
import type { LimitDecision } from '../limits/decision.js'
import { registerBalancerGauges } from './balancer-gauges.js'
import type { BackendChange, ForwardStartInfo, GatewayEvents, RequestEvents } from './events.js'

/** `metrics` option: Prometheus metrics of the gateway. */
export interface MetricsOptions {
  /**
   * A prom-client `Registry` to register in (e.g. prom-client's default `register`, next to the
   * app's own metrics). Default: a registry of this gateway's own.
   */
  registry?: Registry
}

type PromClient = typeof import('prom-client')

// Loaded on first use: an app without metrics never loads prom-client.
let promClient: PromClient | undefined
function loadPromClient(): PromClient {
  promClient ??= createRequire(import.meta.url)('prom-client') as PromClient
  return promClient
}

// Bucket boundaries the OpenTelemetry GenAI conventions advise for each instrument.
const TTFT_BUCKETS = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]
const TPOT_BUCKETS = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5]
const DURATION_BUCKETS = [
  0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
]
const TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304]

/**
 * Prometheus metrics as one consumer of `GatewayEvents`. Labels are bounded by configuration:
 * backend ids, the model names backends declare (anything else is `other`), response statuses,
 * route scopes and policy names; never a client key, address or tenant.
 */
export class PrometheusMetrics implements GatewayEvents {
  readonly registry: Registry
  readonly requests: Counter<'backend' | 'model' | 'status'>
  readonly inFlight: Gauge
  readonly attempts: Counter<'backend' | 'outcome'>
  readonly retries: Counter<'backend'>
  readonly queueWait: Histogram
  readonly ttft: Histogram<'backend' | 'model'>
  readonly tpot: Histogram<'backend' | 'model'>
  readonly duration: Histogram<'backend' | 'model' | 'status'>
  readonly inputTokens: Counter<'backend' | 'model' | 'gen_ai_token_modality'>
  readonly outputTokens: Counter<'backend' | 'model' | 'gen_ai_token_modality'>
  readonly inputTokensPerRequest: Histogram<'backend' | 'model'>
  readonly outputTokensPerRequest: Histogram<'backend' | 'model'>
  readonly limitDecisions: Counter<'route' | 'policy' | 'decision'>
  readonly ejections: Counter<'backend'>
  #balancer: BackendBalancer | undefined

  constructor(options: MetricsOptions = {}) {
    const prom = loadPromClient()
    const registry = options.registry ?? new prom.Registry()
    this.registry = registry
    const registers = [registry]
    this.requests = new prom.Counter({
      name: 'tollgate_requests_total',
      help: 'Forwarded requests by the backend that answered last, model and the status sent to the client',
      labelNames: ['backend', 'model', 'status'],
      registers,
    })
    this.inFlight = new prom.Gauge({
      name: 'tollgate_requests_in_flight',
      help: 'Forwarded requests not yet answered',
      registers,
    })
    this.attempts = new prom.Counter({
      name: 'tollgate_attempts_total',
      help: 'Attempts on backends by outcome (ok, failed, cancelled)',
      labelNames: ['backend', 'outcome'],
      registers,
    })
    this.retries = new prom.Counter({
      name: 'tollgate_retries_total',
      help: 'Attempts after the first of a request, by the backend retried on',
      labelNames: ['backend'],
      registers,
    })
    this.queueWait = new prom.Histogram({
      name: 'tollgate_queue_wait_seconds',
      help: 'Time requests waited in the queue for a backend below its maxConcurrency',
      buckets: DURATION_BUCKETS,
      registers,
    })
    this.ttft = new prom.Histogram({
      name: 'gen_ai_server_time_to_first_token_seconds',
      help: 'Time from the request reaching the gateway to the first chunk of an event-stream response',
      labelNames: ['backend', 'model'],
      buckets: TTFT_BUCKETS,
      registers,
    })
    this.tpot = new prom.Histogram({
      name: 'gen_ai_server_time_per_output_token_seconds',
      help: 'Time per output token after the first of a complete event stream (chunks stand in for tokens until token counts are reported)',
      labelNames: ['backend', 'model'],
      buckets: TPOT_BUCKETS,
      registers,
    })
    this.duration = new prom.Histogram({
      name: 'gen_ai_server_request_duration_seconds',
      help: 'Time from the request reaching the gateway to the end of its response',
      labelNames: ['backend', 'model', 'status'],
      buckets: DURATION_BUCKETS,
      registers,
    })
    // The GenAI conventions' inference usage counters (totals, rates, cost) and per-operation
    // histograms (percentiles); they replaced gen_ai.client.token.usage and gen_ai.token.type.
    // The backend's `usage` does not say which modality its tokens were: `unknown`, as advised.
    this.inputTokens = new prom.Counter({
      name: 'gen_ai_client_inference_usage_input_tokens_total',
      help: "Input (prompt) tokens, from the backend's usage, when token counts are reported",
      labelNames: ['backend', 'model', 'gen_ai_token_modality'],
      registers,
    })
    this.outputTokens = new prom.Counter({
      name: 'gen_ai_client_inference_usage_output_tokens_total',
      help: "Output (completion) tokens, from the backend's usage, when token counts are reported",
      labelNames: ['backend', 'model', 'gen_ai_token_modality'],
      registers,
    })
    this.inputTokensPerRequest = new prom.Histogram({
      name: 'gen_ai_client_inference_operation_input_tokens',
      help: 'Input tokens per request, when token counts are reported',
      labelNames: ['backend', 'model'],
      buckets: TOKEN_BUCKETS,
      registers,
    })
    this.outputTokensPerRequest = new prom.Histogram({
      name: 'gen_ai_client_inference_operation_output_tokens',
      help: 'Output tokens per request, when token counts are reported',
      labelNames: ['backend', 'model'],
      buckets: TOKEN_BUCKETS,
      registers,
    })
    this.limitDecisions = new prom.Counter({
      name: 'tollgate_limit_decisions_total',
      help: 'Rate-limit decisions by route, binding policy and decision (allowed, rejected)',
      labelNames: ['route', 'policy', 'decision'],
      registers,
    })
    this.ejections = new prom.Counter({
      name: 'tollgate_backend_ejections_total',
      help: 'Times the outlier detector ejected a backend',
      labelNames: ['backend'],
      registers,
    })
  }

  /** The balancer whose queue and backends the scrape-time gauges read (none without backends). */
  attach(balancer: BackendBalancer): void {
    this.#balancer = balancer
    registerBalancerGauges(loadPromClient(), this.registry, balancer)
  }

  /** The exposition text and its content type, for a `/metrics` route. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() }
  }

  forwardStart(info: ForwardStartInfo): RequestEvents {
    this.inFlight.inc()
    return new RequestMetrics(this, info)
  }

  limitDecision(route: string, decision: LimitDecision): void {
    this.limitDecisions.inc({
      route,
      policy: decision.binding.policy,
      decision: decision.allowed ? 'allowed' : 'rejected',
    })
  }

  backendChange(backend: BackendTarget, change: BackendChange): void {
    if (change.kind === 'ejected') this.ejections.inc({ backend: backend.id })
  }

  /** The model as a label: only names some backend declares, so clients cannot mint series. */
  modelLabel(model: string | undefined): string {
    if (model === undefined) return ''
    return this.#balancer?.registry.declares(model) === true ? model : 'other'
  }
}

class RequestMetrics implements RequestEvents {
  readonly #metrics: PrometheusMetrics
  readonly #info: ForwardStartInfo
  readonly #startedAt = performance.now()
  #queuedAt = 0
  #backend = 'none'
  #stream = false
  #firstChunkAt = 0
  #lastChunkAt = 0
  #chunks = 0
  #outputTokens: number | undefined

  constructor(metrics: PrometheusMetrics, info: ForwardStartInfo) {
    this.#metrics = metrics
    this.#info = info
  }

  queued(): void {
    this.#queuedAt = performance.now()
  }

  dequeued(): void {
    if (this.#queuedAt !== 0) this.#metrics.queueWait.observe((performance.now() - this.#queuedAt) / 1000)
    this.#queuedAt = 0
  }

  attemptStart(backend: BackendTarget, attempt: number): void {
    this.#backend = backend.id
    if (attempt > 1) this.#metrics.retries.inc({ backend: backend.id })
  }

  attemptEnd(backend: BackendTarget, outcome: AttemptOutcome): void {
    const result = outcome.cancelled ? 'cancelled' : outcome.ok ? 'ok' : 'failed'
    this.#metrics.attempts.inc({ backend: backend.id, outcome: result })
  }

  responseStart(_status: number, stream: boolean): void {
    this.#stream = stream
  }

  responseData(): void {
    if (!this.#stream) return
    const now = performance.now()
    if (this.#chunks === 0) {
      this.#firstChunkAt = now
      const model = this.#metrics.modelLabel(this.#info.model)
      this.#metrics.ttft.observe({ backend: this.#backend, model }, (now - this.#startedAt) / 1000)
    }
    this.#lastChunkAt = now
    this.#chunks++
  }

  tokens(input: number | undefined, output: number | undefined): void {
    const labels = { backend: this.#backend, model: this.#metrics.modelLabel(this.#info.model) }
    const metrics = this.#metrics
    if (input !== undefined) {
      metrics.inputTokens.inc({ ...labels, gen_ai_token_modality: 'unknown' }, input)
      metrics.inputTokensPerRequest.observe(labels, input)
    }
    if (output !== undefined) {
      this.#outputTokens = output
      metrics.outputTokens.inc({ ...labels, gen_ai_token_modality: 'unknown' }, output)
      metrics.outputTokensPerRequest.observe(labels, output)
    }
  }

  end(status: number, complete: boolean): void {
    const metrics = this.#metrics
    metrics.inFlight.dec()
    const model = metrics.modelLabel(this.#info.model)
    const backend = this.#backend
    const code = String(status)
    metrics.requests.inc({ backend, model, status: code })
    metrics.duration.observe({ backend, model, status: code }, (performance.now() - this.#startedAt) / 1000)
    const after = (this.#outputTokens ?? this.#chunks) - 1
    if (complete && this.#stream && after > 0)
      metrics.tpot.observe({ backend, model }, (this.#lastChunkAt - this.#firstChunkAt) / 1000 / after)
  }
}
