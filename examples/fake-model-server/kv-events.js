/**
 * The fake's KV-event feed, in vLLM's wire format (vllm/distributed/kv_events.py,
 * `ZmqEventPublisher`): a ZMQ PUB socket sends multipart messages `[topic, sequence as 8 bytes
 * big-endian, msgpack batch]`; a batch is `[ts, events]` (msgspec `array_like` structs, older
 * vLLM and SGLang) or `{ts, events, data_parallel_rank}` with events tagged by `type` (newer vLLM).
 * Events:
 *   ["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id, medium]
 *   ["BlockRemoved", block_hashes, medium]
 *   ["AllBlocksCleared"]
 * Block hashes are 64-bit integers in the array encoding and bytes in the map one, as each vLLM
 * generation sends them. An optional ROUTER socket answers replay requests as vLLM's does: a start
 * sequence (8 bytes) in, `[sequence, batch]` for every buffered batch from there, then `[-1, ""]`.
 */
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)

/**
 * `port` and `replayPort` 0 (or a replay port given as 0) bind any free port.
 * @typedef {{ port?: number, replayPort?: number, encoding?: 'array' | 'map', topic?: string,
 *   bufferSteps?: number, host?: string }} KvEventOptions
 */

export class KvEventPublisher {
  /** @param {KvEventOptions} options */
  static async start(options) {
    const zmq = require('zeromq')
    const { Packr } = require('msgpackr')
    const host = options.host ?? '127.0.0.1'
    const pub = new zmq.Publisher({ linger: 0 })
    await pub.bind(`tcp://${host}:${options.port || '*'}`)
    let router = null
    if (options.replayPort !== undefined) {
      router = new zmq.Router({ linger: 0 })
      try {
        await router.bind(`tcp://${host}:${options.replayPort || '*'}`)
      } catch (error) {
        pub.close()
        router.close()
        throw error
      }
    }
    return new KvEventPublisher(pub, router, new Packr({ useRecords: false }), options)
  }

  /** @param {any} pub @param {any} router @param {any} packr @param {KvEventOptions} options */
  constructor(pub, router, packr, options) {
    this.pub = pub
    this.router = router
    this.packr = packr
    this.encoding = options.encoding ?? 'array'
    this.topic = Buffer.from(options.topic ?? '')
    this.bufferSteps = options.bufferSteps ?? 10_000
    /** @type {[bigint, Buffer][]} */
    this.buffer = []
    this.sequence = 0n
    /** Batches to leave unsent (still buffered for replay), as a PUB socket past its high-water mark drops them. */
    this.dropNext = 0
    /** @type {unknown[]} */
    this.pending = []
    this.flushing = false
    /** Sends one at a time: a ZMQ socket refuses a send while another is under way. */
    this.sending = Promise.resolve()
    this.closed = false
    this.endpoint = /** @type {string} */ (pub.lastEndpoint)
    this.replayEndpoint = router?.lastEndpoint ?? null
    if (router) void this.serveReplays()
  }

  /**
   * @param {string[]} hashes the fake's hashes (base64 SHA-1) of the stored blocks, in order
   * @param {string | null} parent the hash of the block before the first
   * @param {number[]} tokenIds the stored blocks' tokens
   * @param {number} blockSize
   */
  stored(hashes, parent, tokenIds, blockSize) {
    const h = hashes.map((x) => this.hash(x))
    const p = parent === null ? null : this.hash(parent)
    this.push(
      this.encoding === 'array'
        ? ['BlockStored', h, p, tokenIds, blockSize, null, 'GPU']
        : {
            type: 'BlockStored',
            block_hashes: h,
            parent_block_hash: p,
            token_ids: tokenIds,
            block_size: blockSize,
            lora_id: null,
            medium: 'GPU',
            lora_name: null,
          },
    )
  }

  /** @param {string} hash */
  removed(hash) {
    const h = [this.hash(hash)]
    this.push(
      this.encoding === 'array'
        ? ['BlockRemoved', h, 'GPU']
        : { type: 'BlockRemoved', block_hashes: h, medium: 'GPU' },
    )
  }

  cleared() {
    this.push(this.encoding === 'array' ? ['AllBlocksCleared'] : { type: 'AllBlocksCleared' })
  }

  /** An engine hash from the fake's own: 64-bit integer (array encoding) or the digest's bytes (map). */
  hash(/** @type {string} */ base64) {
    const bytes = Buffer.from(base64, 'base64')
    return this.encoding === 'array' ? bytes.readBigUInt64BE(0) : bytes
  }

  /** Events of one scheduler step go out as one batch, as vLLM publishes once a step. */
  push(/** @type {unknown} */ event) {
    if (this.closed) return
    this.pending.push(event)
    if (!this.flushing) {
      this.flushing = true
      setImmediate(() => void this.flush())
    }
  }

  async flush() {
    this.flushing = false
    const events = this.pending
    this.pending = []
    if (this.closed || events.length === 0) return
    const ts = Date.now() / 1000
    const payload = this.packr.pack(
      this.encoding === 'array' ? [ts, events] : { ts, events, data_parallel_rank: 0 },
    )
    const sequence = this.sequence++
    this.buffer.push([sequence, payload])
    if (this.buffer.length > this.bufferSteps) this.buffer.shift()
    if (this.dropNext > 0) {
      this.dropNext--
      return
    }
    const seq = Buffer.alloc(8)
    seq.writeBigInt64BE(sequence, 0)
    this.sending = this.sending
      .then(() => this.pub.send([this.topic, seq, payload]))
      // Closed while sending: nothing to tell anyone.
      .catch(() => {})
    await this.sending
  }

  async serveReplays() {
    const router = this.router
    try {
      for await (const frames of router) {
        // [identity, empty delimiter, start sequence]
        if (frames.length !== 3) continue
        const [identity, , start] = frames
        const from = start.length === 8 ? start.readBigInt64BE(0) : 0n
        for (const [sequence, payload] of this.buffer) {
          if (sequence < from) continue
          const seq = Buffer.alloc(8)
          seq.writeBigInt64BE(sequence, 0)
          await router.send([identity, Buffer.alloc(0), seq, payload])
        }
        const end = Buffer.alloc(8)
        end.writeBigInt64BE(-1n, 0)
        await router.send([identity, Buffer.alloc(0), end, Buffer.alloc(0)])
      }
    } catch {
      // The socket closed.
    }
  }

  close() {
    this.closed = true
    this.pub.close()
    this.router?.close()
  }
}
