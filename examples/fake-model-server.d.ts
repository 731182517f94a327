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

/** Whose names `/metrics` uses; `none` answers it 404. See the README for the exact series. */
export type MetricsFormat = 'vllm' | 'vllm-v0' | 'sglang' | 'tgi' | 'llamacpp' | 'none'

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
  /** Answers generated at once, like a GPU server's batch (vLLM's `--max-num-seqs`). Default unlimited. */
  capacity?: number
  /** Answers waiting (FIFO) behind a full batch; one more gets 503 with `Retry-After`. Default unlimited. */
  queueLimit?: number
  /**
   * Fixed delay from joining the batch to the first token (and the response headers), on top of the
   * prefill time. Default 0.
   */
  timeToFirstTokenMs?: number
  /**
   * Prompt tokens prefilled a second. Only tokens not found in the prefix cache are prefilled, and
   * prefills take turns in one pipeline, so a burst of long prompts delays each other's first token.
   * Default unlimited (no prefill time).
   */
  prefillTokensPerSecond?: number
  /** KV-cache block size in tokens; the prefix cache reuses whole blocks only. Default 16 (vLLM's). */
  blockSize?: number
  /**
   * KV-cache size in tokens. A sequence holds blocks for its prompt and whole answer while it runs;
   * when the next in line does not fit, it waits (and so does everyone behind it). A prompt that could
   * never fit gets a 400 `context_length_exceeded`; an answer is cut (`finish_reason: 'length'`) where
   * the pool ends. Freed blocks keep their prefix until the pool needs them (LRU). Default 450000.
   */
  kvCacheTokens?: number
  /** Reuse cached prompt prefixes (vLLM's automatic prefix caching). Default true. */
  prefixCaching?: boolean
  /** Metric names on `GET /metrics`. Default `'vllm'`. */
  metricsFormat?: MetricsFormat
  /** Multiplies every delay (first token, prefill, per token), e.g. 0.01 for fast tests. Default 1. */
  timeScale?: number
  /**
   * Publish KV-cache events in vLLM's ZMQ wire format (see examples/README.md): `port` 0 or left out
   * binds any free port, `replayPort` (0: any) opens the replay socket, `encoding` picks older
   * vLLM's arrays (default) or newer vLLM's maps.
   */
  kvEvents?: {
    port?: number
    replayPort?: number
    encoding?: 'array' | 'map'
    topic?: string
    bufferSteps?: number
  }
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
  /**
   * LoRA adapters served as models on top of the base `models`, as vLLM's `--lora-modules`: a
   * request names one in `model`, and `/metrics` (format `vllm`) reports them in
   * `vllm:lora_requests_info`. Default none.
   */
  loraAdapters?: string[]
  /**
   * Adapters one batch may hold (vLLM's `--max-loras`): a request whose adapter would be one too
   * many waits, and later requests that fit go ahead of it. Default 1.
   */
  maxLoras?: number
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
  /** Prompt tokens of answers that joined the batch. */
  promptTokens: number
  /** Of those, tokens found in the prefix cache (not prefilled again). */
  cachedPromptTokens: number
  /** KV-cache blocks held by running answers now. */
  kvBlocksUsed: number
  /** `GET /metrics` requests (counted in `requests` too). */
  metricsRequests: number
  /** LoRA adapters loaded into one of the `maxLoras` slots (starting a request whose adapter was not in one). */
  loraLoads: number
}

export interface KvCacheState {
  /** Blocks held by running answers (cached prefixes of finished ones are free, not used). */
  usedBlocks: number
  totalBlocks: number
  blockSize: number
  /** usedBlocks ÷ totalBlocks, what `vllm:kv_cache_usage_perc` reports. */
  usage: number
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
  /** The most recent request of any kind (`/health` included, `/metrics` not), or null. */
  readonly lastRequest: RecordedRequest | null
  readonly failureMode: FailureMode
  readonly kvCache: KvCacheState
  /**
   * The KV-event feed, with `kvEvents`: its `tcp://` endpoints, and `dropNext(n)` to leave the next
   * n batches unsent (still in the replay buffer), as a PUB socket past its high-water mark drops them.
   */
  readonly kvEvents: { endpoint: string; replayEndpoint: string | null; dropNext(n: number): void } | null
  /** Applies to requests that arrive from now on; answers already generating carry on. */
  setFailureMode(mode: FailureMode, opts?: FailureOptions): void
  /** Zeroes the counters (not the current in flight and queued), e.g. between benchmark phases. */
  resetStats(): void
  /** Destroys every connection, clears every timer and stops listening. Safe to call twice. */
  close(): Promise<void>
}

/** Llama-3.1-8B on one A100 under vLLM, in the fake's options; the README says where each number comes from. */
export const VLLM_LLAMA_8B_A100: Readonly<FakeModelServerOptions>

export function startFakeModelServer(options?: FakeModelServerOptions): Promise<FakeModelServer>

/** Seedable PRNG (mulberry32), uniform in [0, 1). */
export function createRandom(seed: number): () => number

/** Pareto-distributed lengths for `answerTokens`: mostly near `min`, occasionally very long; `max` defaults to 100 × `min`. */
export function paretoTokens(min: number, alpha: number, max?: number): (random: () => number) => number
