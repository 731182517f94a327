import type { BackendState } from '../backend-state.js'
import { KvBlockIndex, type KvIndexStats } from './kv-block-index.js'
import { KvEventSubscriber, type KvFeedStats } from './kv-event-subscriber.js'
import { KvEventLibraries } from './kv-libraries.js'

/** One backend's KV view and feed, as snapshots and metrics show it. */
export interface KvFeedSnapshot extends KvIndexStats, KvFeedStats {
  backend: string
  endpoint: string
}

interface Feed {
  index: KvBlockIndex
  subscriber: KvEventSubscriber
}

/**
 * The KV-event subscriptions of one gateway: one SUB socket and one index per backend with
 * `kvEvents`, opened when the backend is registered and closed when it leaves. Each gateway
 * instance subscribes for itself (an engine's PUB socket serves any number of subscribers).
 */
export class KvEventFeeds {
  readonly #libraries = new KvEventLibraries()
  readonly #feeds = new Map<BackendState, Feed>()
  readonly #maxBlocks: number
  readonly #replayTimeoutMs: number

  constructor(maxBlocks: number, replayTimeoutMs: number) {
    this.#maxBlocks = maxBlocks
    this.#replayTimeoutMs = replayTimeoutMs
  }

  attach(backend: BackendState): void {
    const config = backend.kvEvents
    if (config === null || this.#feeds.has(backend)) return
    const index = new KvBlockIndex(this.#maxBlocks)
    const subscriber = new KvEventSubscriber(
      this.#libraries,
      index,
      config.endpoint,
      config.replay,
      this.#replayTimeoutMs,
    )
    this.#feeds.set(backend, { index, subscriber })
  }

  detach(backend: BackendState): void {
    const feed = this.#feeds.get(backend)
    if (feed === undefined) return
    this.#feeds.delete(backend)
    void feed.subscriber.close()
  }

  /** The backend's index, or undefined when it has no `kvEvents`. */
  indexOf(backend: BackendState): KvBlockIndex | undefined {
    return this.#feeds.get(backend)?.index
  }

  snapshot(): KvFeedSnapshot[] {
    const out: KvFeedSnapshot[] = []
    for (const [backend, feed] of this.#feeds) {
      out.push({
        backend: backend.id,
        endpoint: (backend.kvEvents as { endpoint: string }).endpoint,
        ...feed.index.stats(),
        ...feed.subscriber.stats,
      })
    }
    return out
  }

  async close(): Promise<void> {
    const feeds = [...this.#feeds.values()]
    this.#feeds.clear()
    await Promise.all(feeds.map((f) => f.subscriber.close()))
  }
}
