import type { IncomingHttpHeaders, Server } from 'node:http'

/**
 * - `error-503` / `error-429` / `error-500`: every request gets that status (503 and 429 with
 *   `Retry-After`), except `/health`, which answers 503.
 * - `reset`: every request's socket is destroyed once the request has been read, before any response byte.
 * - `stall`: every request is read and never answered, `/health` included.
 * - `die-mid-stream`: completions answer 200, send `dieAfterChunks` tokens (half the JSON body when
 *   not streaming), then the socket is destroyed. Other endpoints behave normally.
 */
export type FailureMode =
  | 'none'
  | 'error-503'
  | 'error-429'
  | 'error-500'
  | 'reset'
  | 'stall'
  | 'die-mid-stream'

export interface FailureOptions {
  /** `Retry-After` on 503 and 429 answers, in seconds. Default 1. */
  retryAfterSeconds?: number
  /** Token chunks sent before `die-mid-stream` destroys the socket. Default 2. */
  dieAfterChunks?: number
}

export interface FakeModelServerOptions extends FailureOptions {
  /** Default 0: any free port. */
  port?: number
  /** Default `127.0.0.1`. */
  host?: string
  /** Sent as the `x-backend` header and `system_fingerprint`. Default `fake-<port>`. */
  name?: string
  /** Models served; any other gets a 404. A request without `model` gets the first. Default `['fake-model']`. */
  models?: string[]
  /** Answers generated at once, like a GPU server's batch. Default unlimited. */
  capacity?: number
  /** Answers waiting (FIFO) behind a full batch; one more gets 503 with `Retry-After`. Default unlimited. */
  queueLimit?: number
  /** Delay from joining the batch to the first token (and the response headers). Default 0. */
  timeToFirstTokenMs?: number
  /** Delay between tokens with a batch of one. Default 0. */
  timePerTokenMs?: number
  /** Per-token delay is `timePerTokenMs * (1 + batchSlowdown * (generating - 1))`. Default 0. */
  batchSlowdown?: number
  /**
   * Answer length in tokens before `max_tokens` caps it, or a function of the server's seeded random
   * source (uniform in [0, 1)) and the parsed request body. Default 16. See `paretoTokens`.
   */
  answerTokens?: number | ((random: () => number, body: Record<string, unknown>) => number)
  /** Seed for answer lengths and words. Default: random. */
  seed?: number
  /** Default `'none'`. */
  failureMode?: FailureMode
  /** Bodies larger than this get a 413. Default 16 MiB. */
  maxBodyBytes?: number
}

/** Live counters: the object is updated in place. */
export interface FakeServerStats {
  /** HTTP requests received, any path. */
  requests: number
  /** Answers generating now. */
  inFlight: number
  /** Answers waiting for a place in the batch now. */
  queued: number
  /** Answers sent in full. */
  completed: number
  /** Answers whose client went away while queued or generating; their generation stopped. */
  cancelled: number
  /** 503s because the queue was full. */
  rejected: number
  /** Requests answered by a failure mode (error status, reset, stall, death mid-answer). */
  failed: number
  /** Most answers generating at once so far. */
  maxConcurrent: number
  /** TCP connections accepted. */
  connections: number
  /** Completion tokens generated, cancelled answers included. */
  tokens: number
}

export interface RecordedRequest {
  method: string
  url: string
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  /** The body exactly as received. */
  body: Buffer
}

export interface FakeModelServer {
  /** e.g. `http://127.0.0.1:40123`, no trailing slash. */
  readonly url: string
  readonly port: number
  readonly name: string
  readonly models: string[]
  readonly server: Server
  readonly stats: FakeServerStats
  /** The most recent request of any kind (`/health` included), or null. */
  readonly lastRequest: RecordedRequest | null
  readonly failureMode: FailureMode
  /** Applies to requests that arrive from now on; answers already generating carry on. */
  setFailureMode(mode: FailureMode, opts?: FailureOptions): void
  /** Zeroes the counters (not the current in flight and queued), e.g. between benchmark phases. */
  resetStats(): void
  /** Destroys every connection, clears every timer and stops listening. Safe to call twice. */
  close(): Promise<void>
}

export function startFakeModelServer(options?: FakeModelServerOptions): Promise<FakeModelServer>

/** Seedable PRNG (mulberry32), uniform in [0, 1). */
export function createRandom(seed: number): () => number

/** Pareto-distributed lengths for `answerTokens`: mostly near `min`, occasionally very long; `max` defaults to 100 × `min`. */
export function paretoTokens(min: number, alpha: number, max?: number): (random: () => number) => number
