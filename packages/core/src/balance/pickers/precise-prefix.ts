import { optionNames } from '../../option-names.js'
import { checkNumber, fail } from '../../validation.js'
import type { BackendState } from '../backend-state.js'
import { requestBlockKeys } from '../kv-events/block-keys.js'
import { EngineTokenizer } from '../kv-events/engine-tokenizer.js'
import { KvEventFeeds, type KvFeedSnapshot } from '../kv-events/kv-event-feeds.js'
import { reportedLoad } from '../load.js'
import { capacityOf, withinLoadBound } from '../prefill-cost.js'
import type { PickContext } from '../types.js'
import { LeastConnectionsPicker } from './least-connections.js'
import type { Picker } from './picker.js'
import { type PrefixAffinityOptions, PrefixAffinityPicker } from './prefix-affinity.js'

/** `precisePrefix`: the knobs of the `precise-prefix` strategy. */
export interface PrecisePrefixOptions {
  /** Longest wait for the engine's `/tokenize` answer before routing without tokens. Default 100 ms. */
  tokenizeTimeoutMs?: number
  /** Where to tokenize instead of the first available backend's `/tokenize` (a tokenizer service of the same model). */
  tokenizeUrl?: string
  /** Prompt tokens read per request; the rest is not matched. Default 32 768. */
  maxPromptTokens?: number
  /** Blocks indexed per backend, oldest forgotten first. Default 262 144 (24 MiB per backend, measured). */
  indexBlocks?: number
  /**
   * As `prefixAffinity.loadFactor`: how far above the average load the holder of the longest
   * prefix may be before the least loaded gets the request. Default 2, higher than
   * prefix-affinity's 0.5: a match here is a prefix the engine holds, so yielding costs a certain
   * prefill, and under cache pressure 2 halved TTFT p90 against 0.5 (bench/kv-events.js).
   */
  loadFactor?: number
  /** Longest wait for the replay socket's answer to a gap. Default 1 000 ms. */
  replayTimeoutMs?: number
}

export const PRECISE_PREFIX_OPTION_NAMES = optionNames<PrecisePrefixOptions>()([
  'tokenizeTimeoutMs',
  'tokenizeUrl',
  'maxPromptTokens',
  'indexBlocks',
  'loadFactor',
  'replayTimeoutMs',
])

export interface PrecisePrefixStats {
  /** Requests routed with their tokens, and how many went to a backend holding a prefix of them. */
  requests: number
  cacheHits: number
  /** Requests with a prompt that were routed by the approximate index instead: no tokens in time. */
  tokenizeFailures: number
}

/**
 * `precise-prefix`: the candidate whose engine holds the longest prefix of the request's tokens in
 * its KV cache, per the engines' own KV events (`backends[].kvEvents`), unless it is loaded past
 * the bound (as `prefix-affinity`); then the least loaded. A request whose tokens could not be had
 * in time, or whose prefix no engine holds yet (events arrive after prefill), is routed by
 * `prefix-affinity`'s index of where prompts were sent, which learns every choice made here.
 */
export class PrecisePrefixPicker implements Picker {
  readonly name = 'precise-prefix'
  readonly feeds: KvEventFeeds
  readonly loadFactor: number
  /**
   * The fallback, which learns every choice made here: with `routingState` it is the index the
   * replicas share, so a request without tokens, or with a prefix no engine holds yet, finds where
   * another replica sent its conversation.
   */
  readonly approximate: PrefixAffinityPicker
  readonly #byLoad = new LeastConnectionsPicker(reportedLoad, 'least-load')
  readonly #tokenizer: EngineTokenizer
  readonly #tokenizeUrl: URL | undefined
  // Reused by every pick: the keys of the current request's blocks, and a one-backend candidate list.
  readonly #keys: Float64Array
  readonly #one: BackendState[] = []
  readonly stats: PrecisePrefixStats = { requests: 0, cacheHits: 0, tokenizeFailures: 0 }

  constructor(options: PrecisePrefixOptions = {}, approximate: PrefixAffinityOptions = {}) {
    const o = 'precisePrefix'
    const timeoutMs = checkNumber(`${o}.tokenizeTimeoutMs`, options.tokenizeTimeoutMs, 100, { min: 1 })
    const maxTokens = checkNumber(`${o}.maxPromptTokens`, options.maxPromptTokens, 32_768, {
      integer: true,
      min: 1,
    })
    const indexBlocks = checkNumber(`${o}.indexBlocks`, options.indexBlocks, 262_144, {
      integer: true,
      min: 1,
    })
    this.loadFactor = checkNumber(`${o}.loadFactor`, options.loadFactor, 2, { min: 0 })
    const replayTimeoutMs = checkNumber(`${o}.replayTimeoutMs`, options.replayTimeoutMs, 1_000, { min: 1 })
    this.#tokenizeUrl = parseTokenizeUrl(options.tokenizeUrl)
    this.approximate = new PrefixAffinityPicker(approximate)
    this.#tokenizer = new EngineTokenizer(timeoutMs, maxTokens)
    this.feeds = new KvEventFeeds(indexBlocks, replayTimeoutMs)
    // A block holds at least one token: this many keys cover maxPromptTokens at any block size.
    this.#keys = new Float64Array(maxTokens)
  }

  /** Characters of prompt text the approximate fallback reads. */
  get promptChars(): number {
    return this.approximate.promptChars
  }

  /**
   * Tokenizes the request's prompt before it is picked for (bounded by `tokenizeTimeoutMs`);
   * undefined when there is nothing to wait for.
   */
  prepare(ctx: PickContext, backends: readonly BackendState[]): Promise<void> | undefined {
    const fields = ctx.promptFields
    if (ctx.tokens !== undefined || fields === undefined) return undefined
    let url = this.#tokenizeUrl
    let model = ctx.model
    if (url === undefined) {
      const backend = tokenizingBackend(backends, model)
      if (backend === undefined) return undefined
      url = new URL('/tokenize', backend.url)
      if (model !== undefined) model = backend.connection?.modelNames?.get(model) ?? model
    }
    return this.#tokenizer.tokenize(url, model, fields).then((tokens) => {
      if (tokens === undefined) this.stats.tokenizeFailures++
      else ctx.tokens = tokens
    })
  }

  pick(candidates: readonly BackendState[], ctx: PickContext): BackendState | undefined {
    const tokens = ctx.tokens
    if (tokens === undefined || candidates.length === 0) return this.approximate.pick(candidates, ctx)
    this.stats.requests++
    let preferred: BackendState | undefined
    let longest = 0
    let keysFor = 0
    let count = 0
    let total = 1
    let capacity = 0
    for (const backend of candidates) {
      total += loadOf(backend)
      capacity += capacityOf(backend)
      const index = this.feeds.indexOf(backend)
      const blockSize = index?.blockSize
      if (index === undefined || blockSize == null) continue
      if (blockSize !== keysFor) {
        count = requestBlockKeys(tokens, blockSize, this.#keys)
        keysFor = blockSize
      }
      // In tokens, so engines with different block sizes compare fairly.
      const length = index.matchLength(this.#keys, count) * blockSize
      if (length === 0 || length < longest) continue
      if (length > longest || reportedLoad.compare(backend, preferred as BackendState) < 0) {
        preferred = backend
        longest = length
      }
    }
    if (preferred === undefined) return this.approximate.pick(candidates, ctx)
    let chosen: BackendState | undefined
    if (withinLoadBound(preferred, loadOf(preferred), total, capacity, this.loadFactor)) {
      chosen = preferred
      this.stats.cacheHits++
    } else {
      chosen = this.#byLoad.pick(candidates)
    }
    if (chosen !== undefined) {
      // The approximate index learns this choice too: the next turn may come without tokens.
      this.#one[0] = chosen
      this.approximate.pick(this.#one, ctx)
      this.#one.length = 0
    }
    return chosen
  }

  snapshot(): KvFeedSnapshot[] {
    return this.feeds.snapshot()
  }

  async close(): Promise<void> {
    await Promise.all([this.feeds.close(), this.#tokenizer.close()])
  }
}

/** The first healthy backend with `kvEvents` that serves the model: engines of one model share its tokenizer. */
function tokenizingBackend(
  backends: readonly BackendState[],
  model: string | undefined,
): BackendState | undefined {
  for (const b of backends) {
    if (b.kvEvents === null || b.status() !== 'healthy') continue
    if (model !== undefined && b.models !== null && !b.models.has(model)) continue
    return b
  }
  return undefined
}

function parseTokenizeUrl(value: unknown): URL | undefined {
  if (value === undefined) return undefined
  let url: URL | undefined
  try {
    url = typeof value === 'string' ? new URL(value) : undefined
  } catch {}
  if (url === undefined || (url.protocol !== 'http:' && url.protocol !== 'https:'))
    fail(
      'precisePrefix.tokenizeUrl',
      "an http(s) URL of a /tokenize endpoint, e.g. 'http://10.0.0.5:8000/tokenize'",
      value,
    )
  return url
}

/** As in prefix-affinity: requests at or ahead of a new one, by the fresh report when there is one. */
function loadOf(b: BackendState): number {
  const report = b.freshReport()
  if (report === undefined) return b.inFlight
  return Math.max(report.waiting + report.running + b.sentSinceReport, b.inFlight)
}
