/**
 * A fake OpenAI-compatible model server for examples, tests and benchmarks.
 *
 * It behaves like vLLM where that matters to a gateway: a fixed number of answers are generated at
 * once (the batch), more wait in a FIFO queue, a paged KV cache of bounded size holds every running
 * answer (the next in line waits when it is full) and keeps freed prompt blocks as a prefix cache,
 * only uncached prompt tokens are prefilled, every token gets slower as the batch grows, answer
 * lengths can be heavy-tailed, and a client that goes away stops its generation at once. `/metrics`
 * reports queue, batch and KV usage under vLLM's, SGLang's, TGI's or llama.cpp's names. LoRA adapters
 * can be served as models, at most `maxLoras` of them in one batch, as vLLM does, and reported in
 * vLLM's `vllm:lora_requests_info`. Failure modes can be switched at runtime.
 *
 * Only Node built-ins, no build step: `node examples/fake-model-server.js --help`.
 * Types for TypeScript callers live in `fake-model-server.d.ts`.
 */
import { realpathSync } from 'node:fs'
import { createServer } from 'node:http'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { blockHashes, KvCache } from './fake-model-server/kv-cache.js'
import { KvEventPublisher } from './fake-model-server/kv-events.js'
import { LoraSlots } from './fake-model-server/lora-slots.js'
import { METRICS_FORMATS, renderMetrics } from './fake-model-server/metrics.js'
import { laxInteger, parseRequestJson } from './fake-model-server/request-json.js'
import { tokenize } from './fake-model-server/tokenizer.js'

/**
 * @typedef {'none' | 'error-503' | 'error-429' | 'error-500' | 'reset' | 'stall' | 'die-mid-stream'} FailureMode
 * @typedef {{ retryAfterSeconds?: number, dieAfterChunks?: number }} FailureOptions
 * @typedef {{
 *   port?: number, host?: string, name?: string, models?: string[], capacity?: number,
 *   queueLimit?: number, timeToFirstTokenMs?: number, timePerTokenMs?: number, batchSlowdown?: number,
 *   answerTokens?: number | ((random: () => number, body: Record<string, unknown>) => number),
 *   seed?: number, failureMode?: FailureMode, retryAfterSeconds?: number, dieAfterChunks?: number,
 *   maxBodyBytes?: number, prefillTokensPerSecond?: number, blockSize?: number, kvCacheTokens?: number,
 *   prefixCaching?: boolean, metricsFormat?: MetricsFormat, timeScale?: number,
 *   kvEvents?: import('./fake-model-server/kv-events.js').KvEventOptions,
 *   loraAdapters?: string[], maxLoras?: number,
 * }} FakeModelServerOptions
 * @typedef {'vllm' | 'vllm-v0' | 'sglang' | 'tgi' | 'llamacpp' | 'none'} MetricsFormat
 * @typedef {{
 *   requests: number, inFlight: number, queued: number, completed: number, cancelled: number,
 *   rejected: number, failed: number, maxConcurrent: number, connections: number, tokens: number,
 *   promptTokens: number, cachedPromptTokens: number, kvBlocksUsed: number, metricsRequests: number,
 *   loraLoads: number,
 * }} FakeServerStats
 * @typedef {{
 *   method: string, url: string, headers: import('node:http').IncomingHttpHeaders,
 *   rawHeaders: string[], body: Buffer,
 * }} RecordedRequest
 */

const FAILURE_MODES = new Set([
  'none',
  'error-503',
  'error-429',
  'error-500',
  'reset',
  'stall',
  'die-mid-stream',
])

/** vLLM's default `--block-size` on CUDA. */
const DEFAULT_BLOCK_SIZE = 16
/**
 * About what vLLM allocates for Llama-3.1-8B in bf16 on one 80 GB GPU at its default
 * `--gpu-memory-utilization 0.9`: 128 KiB of K and V a token (32 layers × 8 KV heads × 128 dims × 2 × 2
 * bytes) into the ~55 GiB left after the weights.
 */
const DEFAULT_KV_CACHE_TOKENS = 450_000

const WORDS = (
  'the a model token answer stream batch queue server latency prompt cache gate rate limit backend ' +
  'request reply fast slow every next first last small large word text chat line point value'
).split(' ')

/**
 * Small seedable PRNG (mulberry32): benchmarks need the same answer lengths run after run.
 * @param {number} seed
 * @returns {() => number} uniform in [0, 1)
 */
export function createRandom(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * Pareto-distributed answer lengths, for `answerTokens`: most answers are short, a few are very long,
 * which is what makes round robin pile requests up behind one long answer.
 * @param {number} min smallest length (the scale)
 * @param {number} alpha tail index; smaller is heavier (1.1–2 is realistic)
 * @param {number} [max] cap, so one answer cannot run for minutes; default 100 × min
 * @returns {(random: () => number) => number}
 */
export function paretoTokens(min, alpha, max = 100 * min) {
  return (random) => Math.min(max, Math.floor(min / (1 - random()) ** (1 / alpha)))
}

/**
 * Llama-3.1-8B in bf16 served by vLLM on one A100, in the fake's terms (README: "Numbers from vLLM").
 * Decode: ~75 tokens/s for one sequence and 6.6× the throughput at 8 (a published `vllm bench serve`
 * sweep, vLLM 0.23, 1024 in / 128 out), so 13 ms a token growing ~3% per extra sequence. Prefill:
 * ~16 GFLOP a token (2 × 8 B parameters) at about half of the A100's 312 bf16 TFLOP/s.
 * @type {Readonly<FakeModelServerOptions>}
 */
export const VLLM_LLAMA_8B_A100 = Object.freeze({
  capacity: 256,
  timeToFirstTokenMs: 13,
  timePerTokenMs: 13,
  batchSlowdown: 0.03,
  prefillTokensPerSecond: 10_000,
  blockSize: 16,
  kvCacheTokens: 450_000,
})

/**
 * Starts a fake model server and resolves once it listens.
 * @param {FakeModelServerOptions} [options]
 */
export async function startFakeModelServer(options = {}) {
  const host = options.host ?? '127.0.0.1'
  const models = options.models?.length ? [...options.models] : ['fake-model']
  const capacity = positive(options.capacity, Number.POSITIVE_INFINITY, 'capacity')
  const queueLimit = nonNegative(options.queueLimit, Number.POSITIVE_INFINITY, 'queueLimit')
  const ttft = nonNegative(options.timeToFirstTokenMs, 0, 'timeToFirstTokenMs')
  const perToken = nonNegative(options.timePerTokenMs, 0, 'timePerTokenMs')
  const batchSlowdown = nonNegative(options.batchSlowdown, 0, 'batchSlowdown')
  const maxBodyBytes = options.maxBodyBytes ?? 16 * 1024 * 1024
  const answerTokens = options.answerTokens ?? 16
  const random = createRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32))
  const prefillRate = positiveRate(options.prefillTokensPerSecond, 'prefillTokensPerSecond')
  const blockSize = positive(options.blockSize, DEFAULT_BLOCK_SIZE, 'blockSize')
  const kvCacheTokens = positive(options.kvCacheTokens, DEFAULT_KV_CACHE_TOKENS, 'kvCacheTokens')
  const timeScale = positiveRate(options.timeScale ?? 1, 'timeScale')
  const metricsFormat = checkMetricsFormat(options.metricsFormat ?? 'vllm')
  const lora = loraSlots(options.loraAdapters, options.maxLoras, models)
  if (!Number.isInteger(blockSize)) throw new TypeError('blockSize must be an integer')
  if (kvCacheTokens < blockSize) throw new TypeError('kvCacheTokens must hold at least one block')
  const kv = new KvCache(Math.floor(kvCacheTokens / blockSize), blockSize, options.prefixCaching !== false)
  const maxSequenceTokens = kv.totalBlocks * blockSize
  /** Cumulative, as Prometheus counters are: `resetStats` leaves them alone. */
  const totals = {
    prefixQueries: 0,
    prefixHits: 0,
    promptTokens: 0,
    generationTokens: 0,
    succeeded: 0,
    requests: 0,
  }
  /** When the shared prefill pipeline is free again (performance.now() ms). */
  let prefillBusyUntil = 0

  let failureMode = checkMode(options.failureMode ?? 'none')
  /** @type {Required<FailureOptions>} */
  const failureDefaults = {
    retryAfterSeconds: options.retryAfterSeconds ?? 1,
    dieAfterChunks: options.dieAfterChunks ?? 2,
  }
  let failureOptions = { ...failureDefaults }

  /** @type {FakeServerStats} */
  const stats = {
    requests: 0,
    inFlight: 0,
    queued: 0,
    completed: 0,
    cancelled: 0,
    rejected: 0,
    failed: 0,
    maxConcurrent: 0,
    connections: 0,
    tokens: 0,
    promptTokens: 0,
    cachedPromptTokens: 0,
    kvBlocksUsed: 0,
    metricsRequests: 0,
    loraLoads: 0,
  }
  /** @type {RecordedRequest | null} */
  let lastRequest = null
  /** @type {Generation[]} */
  const queue = []
  /** Queued and generating answers, so `close()` can clear their timers. */
  const live = new Set()
  const startedAt = Math.floor(Date.now() / 1000)
  let counter = 0
  let closed = false
  let name = options.name ?? ''

  const server = createServer({ noDelay: true }, (req, res) => {
    stats.requests++
    /** @type {Buffer[]} */
    const chunks = []
    let size = 0
    let tooLarge = false
    req.on('data', (chunk) => {
      size += chunk.length
      if (size > maxBodyBytes) tooLarge = true
      else chunks.push(chunk)
    })
    // A client that gives up while sending its body leaves nothing to answer.
    req.on('error', () => {})
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      const url = req.url ?? ''
      // A gateway scraping /metrics in the background must not hide the request a test looks at.
      if (url === '/metrics' || url.startsWith('/metrics?')) stats.metricsRequests++
      else
        lastRequest = {
          method: req.method ?? '',
          url,
          headers: req.headers,
          rawHeaders: req.rawHeaders,
          body,
        }
      if (closed) return void req.socket.destroy()
      if (tooLarge) return void sendError(res, 413, 'Request body too large.', 'invalid_request_error')
      try {
        route(req, res, body)
      } catch (err) {
        // A throwing answerTokens function (or any bug here) must fail one request, not the process.
        stats.failed++
        const message = err instanceof Error ? err.message : String(err)
        sendError(res, 500, message, 'server_error', null, 'internal_error')
      }
    })
  })
  server.on('connection', () => {
    stats.connections++
  })

  /**
   * @param {import('node:http').IncomingMessage} req
   * @param {import('node:http').ServerResponse} res
   * @param {Buffer} body
   */
  function route(req, res, body) {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    const method = req.method ?? 'GET'
    const mode = failureMode

    if (mode === 'reset') {
      stats.failed++
      return void req.socket.destroy()
    }
    if (mode === 'stall') {
      stats.failed++
      return
    }

    if (path === '/health') {
      if (isErrorMode(mode)) return void sendJson(res, 503, { status: 'unavailable', name })
      return void sendJson(res, 200, { status: 'ok', name })
    }
    if (isErrorMode(mode)) return void sendFailure(res, mode)

    if (path === '/metrics') {
      if (method !== 'GET') return void methodNotAllowed(res, 'GET')
      if (metricsFormat === 'none') return void sendError(res, 404, 'No metrics.', 'invalid_request_error')
      return void sendMetrics(res)
    }
    if (path === '/v1/models' || path.startsWith('/v1/models/')) {
      if (method !== 'GET') return void methodNotAllowed(res, 'GET')
      /** @type {Record<string, unknown>[]} */
      const list = models.map((id) => ({ id, object: 'model', created: startedAt, owned_by: name }))
      // vLLM lists each adapter as a model whose parent is the base model.
      for (const id of lora?.adapters ?? [])
        list.push({ id, object: 'model', created: startedAt, owned_by: name, parent: models[0] })
      if (path === '/v1/models') return void sendJson(res, 200, { object: 'list', data: list })
      const id = safeDecode(path.slice('/v1/models/'.length))
      const found = list.find((m) => m.id === id)
      if (found) return void sendJson(res, 200, found)
      return void modelNotFound(res, id)
    }
    if (path === '/tokenize') {
      if (method !== 'POST') return void methodNotAllowed(res, 'POST')
      return void sendTokens(res, body)
    }
    if (path === '/v1/chat/completions' || path === '/v1/completions') {
      if (method !== 'POST') return void methodNotAllowed(res, 'POST')
      return void acceptCompletion(res, body, path === '/v1/chat/completions' ? 'chat' : 'text', mode)
    }
    sendError(res, 404, `Unknown path ${method} ${path}.`, 'invalid_request_error', null, 'not_found')
  }

  /**
   * @typedef {{
   *   res: import('node:http').ServerResponse, kind: 'chat' | 'text', id: string, created: number,
   *   model: string, stream: boolean, includeUsage: boolean, length: number, answers: number,
   *   finishReason: string,
   *   promptTokens: number, words: () => number, text: string, dieAfter: number,
   *   state: 'queued' | 'generating' | 'done', hashes: string[], tokenIds: number[], cachedTokens: number, blocks: number[],
   *   timer: NodeJS.Timeout | null, adapter: string | null,
   * }} Generation
   */

  /**
   * @param {import('node:http').ServerResponse} res
   * @param {Buffer} raw
   * @param {'chat' | 'text'} kind
   * @param {FailureMode} mode
   */
  function acceptCompletion(res, raw, kind, mode) {
    totals.requests++
    /** @type {any} */
    let body
    try {
      body = parseRequestJson(raw)
    } catch (err) {
      const detail = err instanceof Error ? err.message : String(err)
      return sendError(res, 400, `Could not parse the JSON body: ${detail}`, 'invalid_request_error')
    }
    if (body === null || typeof body !== 'object' || Array.isArray(body)) {
      return sendError(res, 400, 'The request body must be a JSON object.', 'invalid_request_error')
    }
    const model = body.model ?? models[0]
    if (typeof model !== 'string')
      return sendError(res, 400, '`model` must be a string.', 'invalid_request_error', 'model')
    if (!serves(model)) return modelNotFound(res, model)
    const adapter = lora?.has(model) ? model : null
    if (kind === 'chat' && body.messages !== undefined && !Array.isArray(body.messages)) {
      return sendError(res, 400, '`messages` must be an array.', 'invalid_request_error', 'messages')
    }
    if (body.stream !== undefined && body.stream !== null && typeof body.stream !== 'boolean') {
      return sendError(res, 400, '`stream` must be a boolean.', 'invalid_request_error', 'stream')
    }
    // vLLM: `max_completion_tokens or max_tokens`, so a 0 falls through; pydantic reads "5000" as 5000.
    const caps = [laxInteger(body.max_completion_tokens), laxInteger(body.max_tokens)]
    const choices = [laxInteger(body.n), laxInteger(body.best_of)]
    for (const value of [...caps, ...choices]) {
      if (value !== undefined && !(value >= 0)) {
        return sendError(
          res,
          400,
          '`max_tokens`, `n` and `best_of` must be non-negative integers.',
          'invalid_request_error',
          'max_tokens',
        )
      }
    }
    const cap = caps[0] || caps[1] || undefined
    const answers = Math.max(1, choices[0] ?? 1, choices[1] ?? 1)

    // The chat template renders the tool schemas into the prompt.
    const tools = kind === 'chat' && Array.isArray(body.tools) ? JSON.stringify(body.tools) : ''
    const prompt = promptText(kind === 'chat' ? body.messages : body.prompt) + tools
    const tokenIds = tokenize(prompt)
    const promptTokens = tokenIds.length
    if (promptTokens >= maxSequenceTokens) {
      // vLLM refuses a prompt that leaves no room for one answer token, in OpenAI's words.
      const message =
        `This model's maximum context length is ${maxSequenceTokens} tokens. However, your request has ` +
        `${promptTokens} input tokens. Please reduce the length of the input messages.`
      return sendError(res, 400, message, 'invalid_request_error', 'messages', 'context_length_exceeded')
    }
    const hashes = blockHashes(tokenIds, blockSize)
    const wanted = Math.floor(
      Number(typeof answerTokens === 'function' ? answerTokens(random, body) : answerTokens),
    )
    if (!Number.isFinite(wanted)) throw new TypeError(`answerTokens gave ${wanted}, not a finite number`)
    const natural = Math.max(0, wanted)
    // Like vLLM without max_tokens, an answer stops where the context (here: the whole pool) ends.
    const room = maxSequenceTokens - promptTokens
    const length = Math.min(typeof cap === 'number' ? Math.min(natural, cap) : natural, room)
    const waits =
      queue.length > 0 ||
      stats.inFlight >= capacity ||
      !fits(hashes, promptTokens, promptTokens + length) ||
      (lora !== null && !lora.fits(adapter))
    if (waits && queue.length >= queueLimit) {
      stats.rejected++
      res.setHeader('retry-after', String(failureOptions.retryAfterSeconds))
      return sendError(
        res,
        503,
        'The server is at capacity and its queue is full.',
        'server_error',
        null,
        'queue_full',
      )
    }

    counter++
    /** @type {Generation} */
    const gen = {
      res,
      kind,
      id: `${kind === 'chat' ? 'chatcmpl' : 'cmpl'}-${name}-${counter}`,
      created: Math.floor(Date.now() / 1000),
      model,
      stream: body.stream === true,
      includeUsage: body.stream_options?.include_usage === true,
      length,
      answers,
      finishReason: length < natural ? 'length' : 'stop',
      promptTokens,
      // Words come from their own source, drawn at arrival, so a seeded server gives each request the same
      // text however the answers interleave.
      words: createRandom(Math.floor(random() * 2 ** 32)),
      text: '',
      dieAfter: mode === 'die-mid-stream' ? failureOptions.dieAfterChunks : Number.POSITIVE_INFINITY,
      state: 'queued',
      timer: null,
      hashes,
      tokenIds,
      cachedTokens: 0,
      blocks: [],
      adapter,
    }

    res.on('close', () => {
      if (gen.state === 'done') return
      // The client went away before the answer ended: stop generating, like vLLM aborting the request.
      const wasGenerating = gen.state === 'generating'
      finish(gen)
      stats.cancelled++
      if (!wasGenerating) {
        const at = queue.indexOf(gen)
        if (at >= 0) queue.splice(at, 1)
        stats.queued = queue.length
        // The one that left may have been the head the others were waiting behind.
        if (at === 0) admit()
      }
    })

    live.add(gen)
    if (!waits) start(gen)
    else {
      queue.push(gen)
      stats.queued = queue.length
      // Those ahead may wait only for an adapter slot, which this one does not need.
      if (lora !== null) admit()
    }
  }

  /**
   * Whether a sequence fits in the KV cache now, its cached prefix counted once.
   * @param {string[]} hashes @param {number} promptTokens @param {number} tokens prompt and answer
   */
  function fits(hashes, promptTokens, tokens) {
    return kv.fits(hashes, kv.hits(hashes, cacheableBlocks(promptTokens)), tokens)
  }

  /** vLLM recomputes at least a prompt's last token, so a fully cached prompt still has one to prefill. */
  function cacheableBlocks(/** @type {number} */ promptTokens) {
    return Math.floor(Math.max(0, promptTokens - 1) / blockSize)
  }

  /** The blocks the last allocation registered, as BlockStored events, one per run of consecutive blocks. */
  function publishStored(/** @type {Generation} */ gen) {
    const stored = kv.lastStored
    for (let i = 0; i < stored.length; ) {
      const first = /** @type {number} */ (stored[i])
      let last = first
      while (stored[i + 1] === last + 1) last = /** @type {number} */ (stored[++i])
      i++
      kvEvents?.stored(
        gen.hashes.slice(first, last + 1),
        first === 0 ? null : /** @type {string} */ (gen.hashes[first - 1]),
        gen.tokenIds.slice(first * blockSize, (last + 1) * blockSize),
        blockSize,
      )
    }
  }

  /** @param {Generation} gen */
  function canStart(gen) {
    return stats.inFlight < capacity && fits(gen.hashes, gen.promptTokens, gen.promptTokens + gen.length)
  }

  /**
   * Joins the batch: takes the sequence's KV blocks (the whole answer's at once — see the README),
   * then prefills the uncached part of the prompt through the one prefill pipeline the server has.
   * @param {Generation} gen
   */
  function start(gen) {
    gen.state = 'generating'
    stats.inFlight++
    if (stats.inFlight > stats.maxConcurrent) stats.maxConcurrent = stats.inFlight
    if (lora !== null) {
      const loads = lora.loads
      lora.start(gen.adapter)
      stats.loraLoads += lora.loads - loads
    }
    const hits = kv.hits(gen.hashes, cacheableBlocks(gen.promptTokens))
    gen.blocks = kv.allocate(gen.hashes, hits, gen.promptTokens + gen.length)
    if (kvEvents !== null) publishStored(gen)
    stats.kvBlocksUsed = kv.usedBlocks
    gen.cachedTokens = hits * blockSize
    stats.promptTokens += gen.promptTokens
    stats.cachedPromptTokens += gen.cachedTokens
    totals.promptTokens += gen.promptTokens
    totals.prefixQueries += gen.promptTokens
    totals.prefixHits += gen.cachedTokens
    let delay = ttft * timeScale
    const prefillMs = ((gen.promptTokens - gen.cachedTokens) / prefillRate) * 1000 * timeScale
    if (prefillMs > 0) {
      const now = performance.now()
      prefillBusyUntil = Math.max(now, prefillBusyUntil) + prefillMs
      delay += prefillBusyUntil - now
    }
    after(gen, delay, () => emitFrom(gen, 0))
  }

  /**
   * Emits tokens from `index` on; the first one at time to first token, each next one a batch-dependent
   * delay later. Zero delays run in a loop rather than through timers so fast benchmarks stay fast.
   * @param {Generation} gen
   * @param {number} index
   */
  function emitFrom(gen, index) {
    for (;;) {
      if (gen.state !== 'generating') return
      if (index === 0 && gen.stream) openStream(gen)
      if (index >= gen.length) return void complete(gen)
      if (index >= gen.dieAfter) return void die(gen)
      const token = (index === 0 ? '' : ' ') + WORDS[Math.floor(gen.words() * WORDS.length)]
      if (gen.stream) writeEvent(gen.res, tokenChunk(gen, token))
      else gen.text += token
      stats.tokens++
      totals.generationTokens++
      index++
      const delay = perToken * timeScale * (1 + batchSlowdown * (stats.inFlight - 1))
      if (index < gen.length && delay > 0) {
        const next = index
        return void after(gen, delay, () => emitFrom(gen, next))
      }
    }
  }

  /** @param {Generation} gen */
  function openStream(gen) {
    gen.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-backend': name,
    })
    gen.res.flushHeaders()
    // OpenAI opens a chat stream with the role; the legacy completions API has no such chunk.
    if (gen.kind === 'chat') writeEvent(gen.res, chunkOf(gen, { role: 'assistant', content: '' }, null))
  }

  /** @param {Generation} gen */
  function complete(gen) {
    const { res } = gen
    // `n` answers (or `best_of` candidates) are generated side by side; the text shown is the first's.
    const extra = gen.length * (gen.answers - 1)
    stats.tokens += extra
    totals.generationTokens += extra
    const usage = {
      prompt_tokens: gen.promptTokens,
      completion_tokens: gen.length * gen.answers,
      total_tokens: gen.promptTokens + gen.length * gen.answers,
      prompt_tokens_details: { cached_tokens: gen.cachedTokens },
    }
    if (gen.stream) {
      writeEvent(
        res,
        gen.kind === 'chat' ? chunkOf(gen, {}, gen.finishReason) : textChunk(gen, '', gen.finishReason),
      )
      if (gen.includeUsage) writeEvent(res, { ...base(gen, true), choices: [], usage })
      res.end('data: [DONE]\n\n')
    } else {
      const text = gen.text
      const choice =
        gen.kind === 'chat'
          ? {
              index: 0,
              message: { role: 'assistant', content: text },
              logprobs: null,
              finish_reason: gen.finishReason,
            }
          : { index: 0, text, logprobs: null, finish_reason: gen.finishReason }
      sendJson(res, 200, { ...base(gen, false), choices: [choice], usage })
    }
    finish(gen)
    stats.completed++
    totals.succeeded++
  }

  /**
   * A backend that crashes mid-answer: the client got a 200 and part of the body, then the socket dies.
   * @param {Generation} gen
   */
  function die(gen) {
    const { res } = gen
    if (!gen.stream) {
      const text = gen.text
      const payload = JSON.stringify({
        ...base(gen, false),
        choices: [
          { index: 0, message: { role: 'assistant', content: text }, finish_reason: gen.finishReason },
        ],
      })
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        'x-backend': name,
      })
      res.write(payload.slice(0, Math.floor(payload.length / 2)))
    }
    finish(gen)
    stats.failed++
    // Give the written bytes a moment to leave before the reset, so the client sees a broken answer
    // rather than a refused request.
    const socket = res.socket
    setImmediate(() => socket?.destroy())
  }

  /** Leaves the batch (or the queue) and lets the next queued answer in. @param {Generation} gen */
  function finish(gen) {
    const wasGenerating = gen.state === 'generating'
    gen.state = 'done'
    if (gen.timer) clearTimeout(gen.timer)
    gen.timer = null
    live.delete(gen)
    if (!wasGenerating) return
    stats.inFlight--
    lora?.finish(gen.adapter)
    kv.release(gen.blocks)
    gen.blocks = []
    stats.kvBlocksUsed = kv.usedBlocks
    admit()
  }

  /**
   * Starts queued answers while they fit. First come, first served, as vLLM's scheduler: the head
   * of the queue waits for room, and nobody behind it overtakes, except past a request whose
   * adapter would exceed `maxLoras`, which vLLM's scheduler skips.
   */
  function admit() {
    let i = 0
    while (i < queue.length && !closed) {
      const next = /** @type {Generation} */ (queue[i])
      if (!canStart(next)) break
      if (lora !== null && !lora.fits(next.adapter)) {
        i++
        continue
      }
      queue.splice(i, 1)
      stats.queued = queue.length
      start(next)
    }
  }

  /**
   * @param {Generation} gen
   * @param {number} ms
   * @param {() => void} fn
   */
  function after(gen, ms, fn) {
    if (ms <= 0) return fn()
    gen.timer = setTimeout(() => {
      gen.timer = null
      fn()
    }, ms)
  }

  /** @param {Generation} gen @param {boolean} chunk */
  function base(gen, chunk) {
    const object =
      gen.kind === 'chat' ? (chunk ? 'chat.completion.chunk' : 'chat.completion') : 'text_completion'
    return { id: gen.id, object, created: gen.created, model: gen.model, system_fingerprint: name }
  }

  /** @param {Generation} gen @param {Record<string, unknown>} delta @param {string | null} finishReason */
  function chunkOf(gen, delta, finishReason) {
    const chunk = {
      ...base(gen, true),
      choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    }
    // With include_usage OpenAI sends `usage: null` on every chunk but the last.
    return gen.includeUsage ? { ...chunk, usage: null } : chunk
  }

  /** @param {Generation} gen @param {string} text @param {string | null} finishReason */
  function textChunk(gen, text, finishReason) {
    const chunk = {
      ...base(gen, true),
      choices: [{ index: 0, text, logprobs: null, finish_reason: finishReason }],
    }
    return gen.includeUsage ? { ...chunk, usage: null } : chunk
  }

  /** @param {Generation} gen @param {string} text */
  function tokenChunk(gen, text) {
    return gen.kind === 'chat' ? chunkOf(gen, { content: text }, null) : textChunk(gen, text, null)
  }

  /** @param {import('node:http').ServerResponse} res */
  function sendMetrics(res) {
    let batchTokens = 0
    for (const gen of live) if (gen.state === 'generating') batchTokens += gen.promptTokens + gen.length
    const payload = renderMetrics(metricsFormat, {
      model: /** @type {string} */ (models[0]),
      waiting: queue.length,
      running: stats.inFlight,
      kvUsage: kv.usage,
      kvTokens: kv.usedBlocks * blockSize,
      batchTokens,
      ...totals,
      lora:
        lora === null
          ? undefined
          : { maxLora: lora.maxLoras, series: lora.report(queue.map((gen) => gen.adapter)) },
    })
    res.writeHead(200, {
      'content-type': 'text/plain; version=0.0.4; charset=utf-8',
      'content-length': Buffer.byteLength(payload),
      'x-backend': name,
    })
    res.end(payload)
  }

  /** @param {import('node:http').ServerResponse} res @param {FailureMode} mode */
  function sendFailure(res, mode) {
    stats.failed++
    if (mode === 'error-503') {
      res.setHeader('retry-after', String(failureOptions.retryAfterSeconds))
      return sendError(
        res,
        503,
        'The server is overloaded or not ready yet.',
        'server_error',
        null,
        'service_unavailable',
      )
    }
    if (mode === 'error-429') {
      res.setHeader('retry-after', String(failureOptions.retryAfterSeconds))
      return sendError(res, 429, 'Rate limit reached for requests.', 'requests', null, 'rate_limit_exceeded')
    }
    sendError(
      res,
      500,
      'The server had an error while processing your request.',
      'server_error',
      null,
      'internal_error',
    )
  }

  /** @param {string} model */
  function serves(model) {
    return models.includes(model) || lora?.has(model) === true
  }

  /** @param {import('node:http').ServerResponse} res @param {string} model */
  function modelNotFound(res, model) {
    const available = [...models, ...(lora?.adapters ?? [])].join(', ')
    const message = `The model \`${model}\` does not exist. Available models: ${available}.`
    sendError(res, 404, message, 'invalid_request_error', 'model', 'model_not_found')
  }

  /** @param {import('node:http').ServerResponse} res @param {string} allow */
  function methodNotAllowed(res, allow) {
    res.setHeader('allow', allow)
    sendError(
      res,
      405,
      `Method not allowed; use ${allow}.`,
      'invalid_request_error',
      null,
      'method_not_allowed',
    )
  }

  /**
   * @param {import('node:http').ServerResponse} res
   * @param {number} status
   * @param {string} message
   * @param {string} type
   * @param {string | null} [param]
   * @param {string | null} [code]
   */
  function sendError(res, status, message, type, param = null, code = null) {
    sendJson(res, status, { error: { message, type, param, code } })
  }

  /**
   * vLLM's `POST /tokenize`: `{model, messages}` or `{model, prompt}` in, `{count, max_model_len,
   * tokens}` out, the ids being those the KV cache (and its events) key blocks by.
   * @param {import('node:http').ServerResponse} res @param {Buffer} raw
   */
  function sendTokens(res, raw) {
    /** @type {any} */
    let body
    try {
      body = JSON.parse(raw.toString('utf8'))
    } catch {
      return sendError(res, 400, 'Could not parse the JSON body.', 'invalid_request_error')
    }
    const input = Array.isArray(body?.messages) ? body.messages : body?.prompt
    if (input === undefined) return sendError(res, 400, 'Give messages or prompt.', 'invalid_request_error')
    if (body.model !== undefined && !serves(body.model)) return modelNotFound(res, body.model)
    const tokens = tokenize(promptText(input))
    sendJson(res, 200, { count: tokens.length, max_model_len: maxSequenceTokens, tokens })
  }

  /** @param {import('node:http').ServerResponse} res @param {number} status @param {unknown} value */
  function sendJson(res, status, value) {
    if (res.destroyed || res.headersSent) return
    const payload = JSON.stringify(value)
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(payload),
      'x-backend': name,
    })
    res.end(payload)
  }

  // Bound before the HTTP port, so a feed port in use fails the start with nothing left listening.
  const kvEvents = options.kvEvents ? await KvEventPublisher.start({ host, ...options.kvEvents }) : null
  if (kvEvents !== null) kv.onEvict = (hash) => kvEvents.removed(hash)
  await new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject)
      resolve(undefined)
    })
  })
  const address = /** @type {import('node:net').AddressInfo} */ (server.address())
  const port = address.port
  if (!name) name = `fake-${port}`
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`

  /** @type {Promise<void> | null} */
  let closing = null

  return {
    url,
    port,
    name,
    models,
    server,
    stats,
    /** The most recent request of any kind but `/metrics`, with its body exactly as received. */
    get lastRequest() {
      return lastRequest
    },
    get failureMode() {
      return failureMode
    },
    /**
     * The KV-event feed (with `kvEvents`): its endpoints, and `dropNext(n)` to leave the next n
     * batches unsent (still replayable), as a PUB socket past its high-water mark does.
     */
    kvEvents:
      kvEvents === null
        ? null
        : {
            endpoint: kvEvents.endpoint,
            replayEndpoint: kvEvents.replayEndpoint,
            dropNext(/** @type {number} */ n) {
              kvEvents.dropNext += n
            },
          },
    /** The KV cache now: blocks in use (by running answers), the pool, and their ratio. */
    get kvCache() {
      return { usedBlocks: kv.usedBlocks, totalBlocks: kv.totalBlocks, blockSize, usage: kv.usage }
    },
    /**
     * Applies to requests that arrive from now on; answers already generating carry on.
     * @param {FailureMode} mode
     * @param {FailureOptions} [opts]
     */
    setFailureMode(mode, opts = {}) {
      failureMode = checkMode(mode)
      failureOptions = { ...failureDefaults, ...opts }
    },
    /** Zeroes the counters (not the current in flight and queued), e.g. between benchmark phases. */
    resetStats() {
      Object.assign(stats, {
        requests: 0,
        completed: 0,
        cancelled: 0,
        rejected: 0,
        failed: 0,
        maxConcurrent: stats.inFlight,
        connections: 0,
        tokens: 0,
        promptTokens: 0,
        cachedPromptTokens: 0,
        metricsRequests: 0,
        loraLoads: 0,
      })
      lastRequest = null
    },
    close() {
      closing ??= new Promise((resolve) => {
        closed = true
        for (const gen of live) {
          if (gen.timer) clearTimeout(gen.timer)
          gen.timer = null
        }
        queue.length = 0
        kvEvents?.close()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closing
    },
  }
}

/**
 * @param {string[] | undefined} adapters @param {number | undefined} maxLoras @param {string[]} models
 * @returns {LoraSlots | null}
 */
function loraSlots(adapters, maxLoras, models) {
  if (adapters === undefined || adapters.length === 0) {
    if (maxLoras !== undefined) throw new TypeError('maxLoras needs loraAdapters')
    return null
  }
  for (const a of adapters) {
    if (typeof a !== 'string' || a === '' || a.includes(','))
      throw new TypeError(`loraAdapters: ${JSON.stringify(a)} is not an adapter name`)
    if (models.includes(a)) throw new TypeError(`loraAdapters: ${a} is also a base model`)
  }
  const max = positive(maxLoras, 1, 'maxLoras')
  if (!Number.isInteger(max)) throw new TypeError('maxLoras must be an integer')
  return new LoraSlots(adapters, max)
}

/** @param {string} mode @returns {FailureMode} */
function checkMode(mode) {
  if (!FAILURE_MODES.has(mode)) {
    throw new TypeError(
      `Unknown failure mode ${JSON.stringify(mode)}; use one of ${[...FAILURE_MODES].join(', ')}`,
    )
  }
  return /** @type {FailureMode} */ (mode)
}

/** @param {string} format @returns {MetricsFormat} */
function checkMetricsFormat(format) {
  if (!METRICS_FORMATS.includes(format)) {
    throw new TypeError(
      `Unknown metrics format ${JSON.stringify(format)}; use one of ${METRICS_FORMATS.join(', ')}`,
    )
  }
  return /** @type {MetricsFormat} */ (format)
}

/** @param {number | undefined} value @param {string} what */
function positiveRate(value, what) {
  if (value === undefined) return Number.POSITIVE_INFINITY
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0)
    throw new TypeError(`${what} must be > 0`)
  return value
}

/** @param {FailureMode} mode */
function isErrorMode(mode) {
  return mode === 'error-503' || mode === 'error-429' || mode === 'error-500'
}

/** @param {number | undefined} value @param {number} fallback @param {string} what */
function nonNegative(value, fallback, what) {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0)
    throw new TypeError(`${what} must be >= 0`)
  return value
}

/** @param {number | undefined} value @param {number} fallback @param {string} what */
function positive(value, fallback, what) {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || Number.isNaN(value) || value < 1)
    throw new TypeError(`${what} must be >= 1`)
  return value
}

/**
 * The prompt's text, every message's content in order: the fake counts tokens from it (four
 * characters a token; exact counts do not matter, only that a longer prompt has more) and hashes it
 * in blocks for the prefix cache.
 * @param {unknown} input chat messages or a completions prompt
 */
function promptText(input) {
  /** @type {string[]} */
  const parts = []
  /** @param {unknown} value */
  const walk = (value) => {
    if (typeof value === 'string') parts.push(value)
    else if (Array.isArray(value)) value.forEach(walk)
    else if (value && typeof value === 'object') {
      const v = /** @type {Record<string, unknown>} */ (value)
      walk(v.content ?? v.text)
    }
  }
  walk(input)
  return parts.join('')
}

/** @param {string} text */
function safeDecode(text) {
  try {
    return decodeURIComponent(text)
  } catch {
    return text
  }
}

/** @param {import('node:http').ServerResponse} res @param {unknown} value */
function writeEvent(res, value) {
  if (!res.destroyed) res.write(`data: ${JSON.stringify(value)}\n\n`)
}

const HELP = `Usage: node examples/fake-model-server.js [options]

  --port N             port to listen on (default 0: any free port)
  --host H             address to bind (default 127.0.0.1)
  --name S             backend name, sent as x-backend and system_fingerprint
  --model S            a model it serves; repeat or comma-separate (default fake-model)
  --ttft MS            time to first token (default 0)
  --tpt MS             time per token (default 0)
  --capacity N         answers generated at once (default unlimited)
  --queue-limit N      waiting answers beyond capacity before 503 (default unlimited)
  --batch-slowdown F   per-token time grows by F per extra answer in the batch (default 0)
  --tokens N|pareto:MIN:ALPHA[:MAX]
                       answer length (default 16)
  --seed N             seed for answer lengths and words
  --failure MODE       none | error-503 | error-429 | error-500 | reset | stall | die-mid-stream
  --retry-after S      Retry-After seconds on 503/429 (default 1)
  --prefill-tps N      prompt tokens prefilled a second, uncached ones only (default unlimited)
  --block-size N       KV-cache block size in tokens (default 16, as vLLM)
  --kv-tokens N        KV-cache size in tokens; full, requests wait (default 450000)
  --no-prefix-caching  forget prompts once answered
  --kv-events-port N   publish KV-cache events in vLLM's ZMQ format on this port (0: any)
  --kv-events-replay-port N
                       answer replay requests for missed event batches on this port
  --kv-events-encoding array|map
                       event encoding: older vLLM's arrays (default) or newer vLLM's maps
  --metrics FORMAT     /metrics names: vllm | vllm-v0 | sglang | tgi | llamacpp | none (default vllm)
  --lora NAME          a LoRA adapter it serves as a model; repeat or comma-separate
  --max-loras N        adapters one batch may hold (default 1, as vLLM)
  --time-scale F       multiply every delay by F (default 1)
  --vllm               start from VLLM_LLAMA_8B_A100 (later flags override)

Prints the server's URL on stdout; stops on SIGINT or SIGTERM.`

/** @param {string[]} argv */
async function main(argv) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      name: { type: 'string' },
      model: { type: 'string', multiple: true },
      ttft: { type: 'string' },
      tpt: { type: 'string' },
      capacity: { type: 'string' },
      'queue-limit': { type: 'string' },
      'batch-slowdown': { type: 'string' },
      tokens: { type: 'string' },
      seed: { type: 'string' },
      failure: { type: 'string' },
      'retry-after': { type: 'string' },
      'prefill-tps': { type: 'string' },
      'block-size': { type: 'string' },
      'kv-tokens': { type: 'string' },
      'no-prefix-caching': { type: 'boolean' },
      'kv-events-port': { type: 'string' },
      'kv-events-replay-port': { type: 'string' },
      'kv-events-encoding': { type: 'string' },
      metrics: { type: 'string' },
      lora: { type: 'string', multiple: true },
      'max-loras': { type: 'string' },
      'time-scale': { type: 'string' },
      vllm: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    console.log(HELP)
    return
  }
  /** @param {string | undefined} s */
  const num = (s) => {
    if (s === undefined) return undefined
    const n = Number(s)
    if (Number.isNaN(n)) throw new TypeError(`not a number: ${s}`)
    return n
  }
  /** @type {FakeModelServerOptions['answerTokens']} */
  let answerTokens
  if (values.tokens?.startsWith('pareto:')) {
    const [min, alpha, max] = values.tokens.slice('pareto:'.length).split(':').map(Number)
    answerTokens = paretoTokens(min ?? 16, alpha ?? 1.5, max)
  } else {
    answerTokens = num(values.tokens)
  }
  /** @type {FakeModelServerOptions} */
  const given = {
    port: num(values.port),
    host: values.host,
    name: values.name,
    models: values.model?.flatMap((m) => m.split(',')).filter(Boolean),
    timeToFirstTokenMs: num(values.ttft),
    timePerTokenMs: num(values.tpt),
    capacity: num(values.capacity),
    queueLimit: num(values['queue-limit']),
    batchSlowdown: num(values['batch-slowdown']),
    answerTokens,
    seed: num(values.seed),
    failureMode: /** @type {FailureMode | undefined} */ (values.failure),
    retryAfterSeconds: num(values['retry-after']),
    prefillTokensPerSecond: num(values['prefill-tps']),
    blockSize: num(values['block-size']),
    kvCacheTokens: num(values['kv-tokens']),
    prefixCaching: values['no-prefix-caching'] ? false : undefined,
    kvEvents:
      values['kv-events-port'] === undefined
        ? undefined
        : {
            port: num(values['kv-events-port']),
            replayPort: num(values['kv-events-replay-port']),
            encoding: /** @type {'array' | 'map'} */ (values['kv-events-encoding'] ?? 'array'),
          },
    metricsFormat: /** @type {MetricsFormat | undefined} */ (values.metrics),
    loraAdapters: values.lora?.flatMap((m) => m.split(',')).filter(Boolean),
    maxLoras: num(values['max-loras']),
    timeScale: num(values['time-scale']),
  }
  /** @type {Record<string, unknown>} */
  const options = values.vllm ? { ...VLLM_LLAMA_8B_A100 } : {}
  for (const [key, value] of Object.entries(given)) if (value !== undefined) options[key] = value
  const fake = await startFakeModelServer(options)
  console.log(fake.url)
  if (fake.kvEvents) console.error(`KV events on ${fake.kvEvents.endpoint}`)
  const adapters = given.loraAdapters?.length ? ` and LoRA adapters ${given.loraAdapters.join(', ')}` : ''
  console.error(`fake model server ${fake.name} serving ${fake.models.join(', ')}${adapters}`)
  const stop = () => void fake.close()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
}

// Importing this module (tests, benchmarks, the demo) must not start a server; only running it does.
if (process.argv[1] && fileURLToPath(import.meta.url) === realpathOrSelf(process.argv[1])) {
  main(process.argv.slice(2)).catch((err) => {
    console.error(err instanceof Error ? err.message : err)
    process.exitCode = 1
  })
}

/** @param {string} path */
function realpathOrSelf(path) {
  try {
    return realpathSync(path)
  } catch {
    return path
  }
}
