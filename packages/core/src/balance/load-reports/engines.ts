import { LORA_METRIC, type LoraReport, toLoraReport } from './lora-report.js'
import { parsePrometheusText, type Sample } from './prometheus-text.js'

/** What a model server says about its own load, read from its `/metrics`. */
export interface LoadReport {
  /** Requests waiting for a place in the running batch. */
  readonly waiting: number
  /** Requests in the running batch (prefilling or decoding). */
  readonly running: number
  /** Fraction of the KV cache in use, 0..1; undefined for engines that do not report it (TGI). */
  readonly kvUsage: number | undefined
  /** When the report arrived (ms, the scraper's clock). */
  readonly at: number
  /** The LoRA adapters it has requests for; undefined when it reports none (LoRA off, or not vLLM). */
  readonly lora?: LoraReport | undefined
}

export type MetricsFormat = 'vllm' | 'sglang' | 'tgi' | 'llamacpp'

export const METRICS_FORMATS: readonly MetricsFormat[] = ['vllm', 'sglang', 'tgi', 'llamacpp']

interface EngineMetricNames {
  readonly waiting: string
  readonly running: string
  /** Tried in order: the first name present wins (current name first, then older releases'). */
  readonly kvUsage: readonly string[]
  /** Optional: read when present, and neither its absence nor a malformed line fails the scrape. */
  readonly lora?: string
}

/**
 * Each engine's own names, as its exporter writes them:
 * - vLLM V1 (`vllm/v1/metrics/loggers.py`); `vllm:gpu_cache_usage_perc` is the V0 name, dropped
 *   after its deprecation in 0.10. `vllm:lora_requests_info` (see lora-report.ts) only with LoRA on.
 * - SGLang (`python/sglang/srt/metrics/collector.py`): `token_usage` is KV tokens in use ÷ pool.
 * - TGI's router exports no KV usage (`tgi_batch_current_max_tokens` is a token budget, not a share).
 * - llama.cpp `llama-server --metrics` (`tools/server/server-task.cpp`, checked against a real
 *   server in test/engines/routing.test.ts): `requests_processing` counts busy slots,
 *   `requests_deferred` the queue; `kv_cache_usage_ratio` only in builds before the unified KV
 *   cache, newer ones report none.
 */
export const ENGINE_METRICS: Readonly<Record<MetricsFormat, EngineMetricNames>> = {
  vllm: {
    waiting: 'vllm:num_requests_waiting',
    running: 'vllm:num_requests_running',
    kvUsage: ['vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc'],
    lora: LORA_METRIC,
  },
  sglang: {
    waiting: 'sglang:num_queue_reqs',
    running: 'sglang:num_running_reqs',
    kvUsage: ['sglang:token_usage'],
  },
  tgi: { waiting: 'tgi_queue_size', running: 'tgi_batch_current_size', kvUsage: [] },
  llamacpp: {
    waiting: 'llamacpp:requests_deferred',
    running: 'llamacpp:requests_processing',
    kvUsage: ['llamacpp:kv_cache_usage_ratio'],
  },
}

function wantedNames(format: MetricsFormat): ReadonlySet<string> {
  const m = ENGINE_METRICS[format]
  return new Set([m.waiting, m.running, ...m.kvUsage, ...(m.lora === undefined ? [] : [m.lora])])
}

const OPTIONAL: ReadonlySet<string> = new Set([LORA_METRIC])

const WANTED: Readonly<Record<MetricsFormat, ReadonlySet<string>>> = {
  vllm: wantedNames('vllm'),
  sglang: wantedNames('sglang'),
  tgi: wantedNames('tgi'),
  llamacpp: wantedNames('llamacpp'),
}

export class MissingMetricError extends Error {
  override readonly name = 'MissingMetricError'
}

/**
 * One engine's `/metrics` text as a LoadReport. A server running several engines (vLLM data
 * parallel: one series per `engine` label) reports the sum of their queues and batches and the mean
 * of their KV usage, as vLLM's own aggregated log line does. Throws MissingMetricError when the
 * queue or batch gauge is absent: the configured format is wrong, or the server is not that engine.
 */
export function toLoadReport(format: MetricsFormat, text: string, at: number): LoadReport {
  const names = ENGINE_METRICS[format]
  const samples = parsePrometheusText(text, WANTED[format], OPTIONAL)
  const waiting = sum(samples, names.waiting)
  const running = sum(samples, names.running)
  if (waiting === undefined) throw new MissingMetricError(`no ${names.waiting} in the metrics`)
  if (running === undefined) throw new MissingMetricError(`no ${names.running} in the metrics`)
  let kvUsage: number | undefined
  for (const name of names.kvUsage) {
    kvUsage = mean(samples, name)
    if (kvUsage !== undefined) break
  }
  const lora = names.lora === undefined ? undefined : toLoraReport(samples, names.lora)
  return { waiting, running, kvUsage: kvUsage === undefined ? undefined : clamp01(kvUsage), at, lora }
}

function sum(samples: readonly Sample[], name: string): number | undefined {
  let total: number | undefined
  for (const s of samples) {
    if (s.name !== name || !Number.isFinite(s.value)) continue
    total = (total ?? 0) + Math.max(0, s.value)
  }
  return total
}

function mean(samples: readonly Sample[], name: string): number | undefined {
  let total = 0
  let count = 0
  for (const s of samples) {
    if (s.name !== name || !Number.isFinite(s.value)) continue
    total += s.value
    count++
  }
  return count === 0 ? undefined : total / count
}

function clamp01(value: number): number {
  return Math.min(1, Math.max(0, value))
}
