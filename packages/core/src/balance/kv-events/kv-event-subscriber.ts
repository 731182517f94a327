import type { Unpackr } from 'msgpackr'
import type * as Zeromq from 'zeromq'
import { eventsOfBatch } from './event-decoder.js'
import type { KvBlockIndex } from './kv-block-index.js'
import type { KvEventLibraries } from './kv-libraries.js'

/** How one backend's event feed went. */
export interface KvFeedStats {
  /** Batches applied (from the feed and from replays). */
  batches: number
  /** Sequence gaps seen; each clears the backend's view unless the replay socket filled it. */
  gaps: number
  /** Gaps the replay socket filled, so the view was kept. */
  replayed: number
  /** Times the view was cleared because events were lost or the engine restarted. */
  cleared: number
  /** Messages that could not be decoded (skipped). */
  decodeErrors: number
  /** Sequence number of the last batch applied; null before the first. */
  lastSequence: number | null
  lastError: string | null
}

/** The replay answer's end marker: sequence -1, as vLLM's publisher sends it. */
const END_OF_REPLAY = -1n

/**
 * A ZMQ SUB socket on one engine's KV-event feed (vLLM's `--kv-events-config` publisher): frames
 * `[topic, 8-byte big-endian sequence, msgpack batch]`. Batches apply in sequence order; a jump
 * in the sequence means the PUB socket dropped batches (it drops past its high-water mark, and
 * nothing was received while disconnected), so the view is no longer the engine's: it is
 * cleared, after asking the replay socket (`kvEventsReplay`, vLLM's ROUTER) for what was missed
 * when one is configured. A sequence going backwards is a restarted engine, whose cache is empty.
 */
export class KvEventSubscriber {
  readonly stats: KvFeedStats = {
    batches: 0,
    gaps: 0,
    replayed: 0,
    cleared: 0,
    decodeErrors: 0,
    lastSequence: null,
    lastError: null,
  }
  readonly #index: KvBlockIndex
  readonly #zmq: typeof Zeromq
  readonly #unpackr: Unpackr
  readonly #replayEndpoint: string | null
  readonly #replayTimeoutMs: number
  readonly #subscriber: Zeromq.Subscriber
  #dealer: Zeromq.Dealer | undefined
  #last: bigint | null = null
  #closed = false
  readonly #running: Promise<void>

  constructor(
    libraries: KvEventLibraries,
    index: KvBlockIndex,
    endpoint: string,
    replayEndpoint: string | null,
    replayTimeoutMs: number,
  ) {
    this.#index = index
    this.#zmq = libraries.zeromq()
    const msgpackr = libraries.msgpackr()
    // 64-bit hashes past 2^53 stay exact as bigints; records are a msgpackr extension vLLM never sends.
    this.#unpackr = new msgpackr.Unpackr({ useRecords: false, int64AsType: 'bigint', mapsAsObjects: true })
    this.#replayEndpoint = replayEndpoint
    this.#replayTimeoutMs = replayTimeoutMs
    this.#subscriber = new this.#zmq.Subscriber({ linger: 0 })
    this.#subscriber.connect(endpoint)
    this.#subscriber.subscribe()
    this.#running = this.#run()
  }

  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#subscriber.close()
    this.#dealer?.close()
    await this.#running
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      let frames: Buffer[]
      try {
        frames = await this.#subscriber.receive()
      } catch (error) {
        if (this.#closed) return
        this.stats.lastError = (error as Error).message
        continue
      }
      if (frames.length < 3 || (frames[1] as Buffer).length !== 8) {
        this.#decodeError('a message without [topic, 8-byte sequence, payload] frames')
        continue
      }
      await this.#receive((frames[1] as Buffer).readBigInt64BE(0), frames[2] as Buffer)
    }
  }

  async #receive(sequence: bigint, payload: Buffer): Promise<void> {
    const last = this.#last
    if (last === null) {
      // Joined a running engine: what it stored before is only known through a replay.
      if (sequence > 0n && this.#replayEndpoint !== null) await this.#replay(0n, sequence - 1n)
    } else if (sequence <= last) {
      this.#clear()
    } else if (sequence > last + 1n) {
      this.stats.gaps++
      if (this.#replayEndpoint !== null && (await this.#replay(last + 1n, sequence - 1n)))
        this.stats.replayed++
      else this.#clear()
    }
    if (this.#closed) return
    this.#apply(payload)
    this.#last = sequence
    this.stats.lastSequence = Number(sequence)
  }

  #apply(payload: Buffer): void {
    let events: ReturnType<typeof eventsOfBatch>
    try {
      events = eventsOfBatch(this.#unpackr.unpack(payload))
    } catch (error) {
      this.#decodeError((error as Error).message)
      return
    }
    for (const event of events) this.#index.apply(event)
    this.stats.batches++
  }

  #clear(): void {
    this.#index.clear()
    this.stats.cleared++
  }

  #decodeError(message: string): void {
    this.stats.decodeErrors++
    this.stats.lastError = message
  }

  /**
   * Asks the replay socket for batches `from`…`to` and applies them; true when every one of them
   * came back. vLLM's ROUTER answers `[sequence, payload]` per buffered batch from `from` on, then
   * `[-1, ""]`; a DEALER sends the empty delimiter a REQ socket would, but takes many answers.
   */
  async #replay(from: bigint, to: bigint): Promise<boolean> {
    // One socket per replay (gaps are rare): an answer left unread can never be taken for the next one's.
    const dealer = new this.#zmq.Dealer({ linger: 0, receiveTimeout: this.#replayTimeoutMs })
    this.#dealer = dealer
    const start = Buffer.alloc(8)
    start.writeBigInt64BE(from, 0)
    let expected = from
    try {
      dealer.connect(this.#replayEndpoint as string)
      await dealer.send([Buffer.alloc(0), start])
      for (;;) {
        const frames = await dealer.receive()
        // [delimiter, sequence, payload]
        const sequenceFrame = frames[frames.length - 2]
        if (sequenceFrame === undefined || sequenceFrame.length !== 8) return false
        const sequence = sequenceFrame.readBigInt64BE(0)
        if (sequence === END_OF_REPLAY) return expected > to
        if (sequence < expected || sequence > to) continue
        // The publisher's buffer no longer holds `expected`: the gap cannot be filled.
        if (sequence > expected) return false
        this.#apply(frames[frames.length - 1] as Buffer)
        expected++
      }
    } catch (error) {
      if (!this.#closed) this.stats.lastError = `replay: ${(error as Error).message}`
      return false
    } finally {
      dealer.close()
      this.#dealer = undefined
    }
  }
}
