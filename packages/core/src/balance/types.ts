import type { MetricsFormat } from './load-reports/engines.js'

/**
 * The contract between the backend registry, the pickers and the forwarder.
 *
 * Raw signals (in flight, latency estimate) live on the backend's state and are updated through
 * `Balancer.acquire` and `BackendLease.finish`; a `Load` (load.ts) turns them into a comparison
 * and pickers only compare. Health pieces (outlier detector, active checker, Retry-After
 * cool-down) never talk to pickers: they mark the backend's state, and the balancer leaves
 * unhealthy, ejected or cooling-down backends out of the candidates a picker sees.
 */

export interface BackendConfig {
  /** Origin (and optional base path) of the model server, e.g. `http://10.0.0.5:8000`. */
  url: string
  /** Stable name used in snapshots and logs; defaults to the URL's origin + path. */
  id?: string
  /** Relative share for weighted strategies; positive number, default 1. */
  weight?: number
  /** Models this backend serves; when absent it serves any model. */
  models?: string[]
  zone?: string
  /** Requests this backend may have at once; more wait in a bounded queue at the gateway. */
  maxConcurrency?: number
  /**
   * The server's own load report: its Prometheus endpoint in one engine's names, scraped every
   * `loadReports.intervalMs`. A format name scrapes `/metrics` on the backend's origin.
   */
  metrics?: MetricsFormat | { format: MetricsFormat; path?: string }
  /**
   * Added to every request forwarded to this backend, replacing a client header of the same name
   * (e.g. `{ authorization: 'Bearer sk-…' }` for a provider). Never logged, never in snapshots.
   */
  headers?: Record<string, string>
  /**
   * The model name this backend expects for a name clients use (`{ 'gpt-4o': 'gpt-4o-2024-08-06' }`):
   * the top-level `model` of a JSON body is rewritten for this backend only. The client-side
   * name is what `models` lists and routing matches.
   */
  modelNames?: Record<string, string>
  /**
   * Whether the client's own `Authorization` header reaches this backend. Default: it does,
   * unless `headers` sets `authorization` (the backend's credential replaces the client's).
   */
  forwardAuthorization?: boolean
  /**
   * Whether the server keeps a connection open after a streamed response. Default true; false for
   * servers that close it while still sending `Keep-Alive` (llama.cpp's `llama-server`), so streamed
   * requests ask for `Connection: close` instead of leaving a dead socket in the pool. The gateway
   * also learns it: a kept-alive connection found closed is retried on the same backend over a
   * fresh one, and from then on that backend's streamed connections are not kept.
   */
  keepAliveAfterStreams?: boolean
  /**
   * The engine's KV-cache event feed, `tcp://host:port` (vLLM's `--kv-events-config` publisher,
   * default port 5557), read by the `precise-prefix` strategy to know which prompt prefixes this
   * backend holds in its cache.
   */
  kvEvents?: string
  /** The engine's replay socket (vLLM's `replay_endpoint`), asked for batches the feed missed. */
  kvEventsReplay?: string
}

export type BackendStatus = 'healthy' | 'ejected' | 'unhealthy' | 'cooling-down' | 'draining'

/** Read-only snapshot of one backend, as returned by `registry.snapshot()`. */
export interface BackendSnapshot {
  id: string
  url: string
  weight: number
  models: string[] | null
  zone: string | null
  maxConcurrency: number | null
  status: BackendStatus
  inFlight: number
  queued: number
  totalRequests: number
  totalErrors: number
  consecutiveFailures: number
  /** Peak-EWMA latency estimate in milliseconds (time to response headers). */
  latencyMs: number
  ejectedUntil: number | null
  /** The server's last load report, when it has `metrics`; null otherwise. */
  loadReport: LoadReportSnapshot | null
}

/** What a backend last said about its load, and whether tollgate still believes it. */
export interface LoadReportSnapshot {
  format: MetricsFormat
  /** Queue, running batch and KV-cache use (0..1, null when the engine reports none); null before the first report. */
  waiting: number | null
  running: number | null
  kvUsage: number | null
  /**
   * LoRA adapters with requests running and waiting there, and how many one batch may hold
   * (`vllm:lora_requests_info`); null when the last report had none.
   */
  lora: { running: string[]; waiting: string[]; maxLora: number | null } | null
  /** Milliseconds since the last good report; null before the first. */
  ageMs: number | null
  /** Not used for routing: none yet, older than `loadReports.staleAfterMs`, or the last scrape failed. */
  stale: boolean
  /** Requests this gateway sent since that report that are still in flight, counted on top of it. */
  sentSinceReport: number
  scrapes: number
  failures: number
  lastError: string | null
}

/** How one attempt against a backend ended, reported by the forwarder. */
export interface AttemptOutcome {
  /** true when the backend answered with something we pass on as a success (< 500 and not 429). */
  ok: boolean
  /** Status from the backend, when it answered at all. */
  status?: number
  /** Milliseconds from dispatch to response headers (or to failure). */
  latencyMs: number
  /** Backend asked us to wait (Retry-After on 429/503), in milliseconds. */
  retryAfterMs?: number
  /** Transport-level failure (connect refused, reset, timeout). */
  error?: Error
  /**
   * The client went away (or the attempt was abandoned by the gateway) before the backend
   * answered. Says nothing about the backend: counted neither as success nor as failure.
   */
  cancelled?: boolean
}

/** What a picker may read about a request. */
export interface PickContext {
  /** The `model` field of a JSON body, when model-aware routing is on. */
  model?: string
  /** Affinity key for consistent hashing (header, session id, or function result). */
  hashKey?: string
  /**
   * The start of the prompt (`messages`, `prompt` or `input` as text, bounded), read only for
   * `prefix-affinity` and `precise-prefix`.
   */
  prompt?: string
  /** The body's prompt field, parsed (`{ messages }`, `{ prompt }` or `{ input }`), for tokenizing it as the engine does. */
  promptFields?: Record<string, unknown>
  /** The prompt's token ids as the engine counts them, when `precise-prefix` could get them. */
  tokens?: readonly number[]
}

/** The part of a backend the forwarder needs to dispatch to it. */
export interface BackendTarget {
  readonly id: string
  /** Parsed `BackendConfig.url`; its pathname is a prefix for every forwarded path. */
  readonly url: URL
  /** Headers and model names of this backend's own; undefined when it has none (the common case). */
  // `| undefined`: a consumer compiling with exactOptionalPropertyTypes reads BackendState, which holds it so.
  readonly connection?: BackendConnection | undefined
  /** `BackendConfig.keepAliveAfterStreams`; undefined means true. */
  readonly keepAliveAfterStreams?: boolean | undefined
}

/** `BackendConfig.headers`, `modelNames` and `forwardAuthorization`, prepared for the request path. */
export interface BackendConnection {
  /** Flat `[name, value, …]` list, names lower-cased, appended to the forwarded headers. */
  readonly headers: readonly string[]
  /** Lower-cased client header names left out for this backend (its own headers' names, maybe `authorization`). */
  readonly replaced: ReadonlySet<string>
  /** Client model name → this backend's name; null when there are none. */
  readonly modelNames: ReadonlyMap<string, string> | null
}

/** One attempt's claim on a backend: counted in flight until `finish` is called, exactly once. */
export interface BackendLease {
  readonly backend: BackendTarget
  finish(outcome: AttemptOutcome): void
}

/**
 * What the forwarder asks for a backend. Implemented in `balancer.ts` by composing the registry,
 * a picker, the health pieces and the concurrency queue.
 */
export interface Balancer {
  /**
   * A lease on one available backend not in `exclude` (ids already tried for this request).
   * Waits in the bounded queue when every candidate is at `maxConcurrency`. Throws (or rejects
   * with) a `BalancerError` when no backend can take the request. `signal` cancels the wait; it
   * may be a function that creates the signal, called only when the request has to wait, so the
   * common path pays for no AbortController.
   */
  acquire(
    ctx: PickContext,
    exclude: ReadonlySet<string>,
    signal?: AbortSignal | (() => AbortSignal),
  ): BackendLease | Promise<BackendLease>
  /**
   * Work to finish before the first `acquire` of a request (tokenizing its prompt), or undefined
   * when there is none. Never rejects; it resolves within a bound the balancer sets.
   */
  prepare?(ctx: PickContext): Promise<void> | undefined
  /** Every model some registered backend declares, sorted; empty when none declare models. */
  models(): string[]
}
