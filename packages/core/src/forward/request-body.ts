import type { IncomingMessage } from 'node:http'
import { Transform, type TransformCallback } from 'node:stream'
import { BodyTooLargeError, ClientClosedError } from './errors.js'

const EMPTY = Buffer.alloc(0)

/** True when the request carries a body at all (RFC 9112 §6.3: only these two headers announce one). */
export function requestHasBody(req: IncomingMessage): boolean {
  const headers = req.headers
  if (headers['transfer-encoding'] !== undefined) return true
  const length = headers['content-length']
  return length !== undefined && length !== '0'
}

/** The announced `Content-Length`, or -1 when the body is chunked. */
export function declaredBodyLength(req: IncomingMessage): number {
  const length = req.headers['content-length']
  if (length === undefined || req.headers['transfer-encoding'] !== undefined) return -1
  return Number(length)
}

/**
 * A request body that is streamed to one backend and cannot be replayed: the bytes already read
 * while trying to buffer it, then the rest of the request, with `maxBodyBytes` enforced as it
 * flows. It sits between `req` and undici so that undici destroying it after a failed attempt
 * does not destroy `req` (and with it the socket the error answer has to go out on).
 */
export class StreamedBody extends Transform {
  private received: number

  constructor(
    source: IncomingMessage,
    prefix: readonly Buffer[],
    prefixBytes: number,
    private readonly maxBodyBytes: number,
  ) {
    super()
    this.received = prefixBytes
    for (const chunk of prefix) this.push(chunk)
    source.once('error', (err) => this.destroy(err))
    source.pipe(this)
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length
    if (this.received > this.maxBodyBytes) callback(new BodyTooLargeError(this.maxBodyBytes))
    else callback(null, chunk)
  }
}

/**
 * Reads the request body before any backend is involved: into one Buffer when it ends within
 * `bufferBytes`, else (only possible for a body whose declared length is within `maxBodyBytes`)
 * as a `StreamedBody` carrying what was read so far. Rejects with `BodyTooLargeError` past
 * `maxBodyBytes`, `ClientClosedError` when the client goes away first. Callers pass
 * `bufferBytes = maxBodyBytes` for a chunked body, so no byte of a body that turns out too large
 * ever reaches a backend.
 */
export function readRequestBody(
  req: IncomingMessage,
  bufferBytes: number,
  maxBodyBytes: number,
): Promise<Buffer | StreamedBody> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let total = 0
    const stop = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onClose)
      req.off('close', onClose)
      req.pause()
    }
    const onData = (chunk: Buffer): void => {
      total += chunk.length
      chunks.push(chunk)
      if (total > maxBodyBytes) {
        stop()
        reject(new BodyTooLargeError(maxBodyBytes))
      } else if (total > bufferBytes) {
        stop()
        resolve(new StreamedBody(req, chunks, total, maxBodyBytes))
      }
    }
    const onEnd = (): void => {
      stop()
      resolve(chunks.length === 1 ? chunks[0]! : chunks.length === 0 ? EMPTY : Buffer.concat(chunks, total))
    }
    const onClose = (): void => {
      stop()
      reject(new ClientClosedError())
    }
    req.on('data', onData)
    req.once('end', onEnd)
    req.once('error', onClose)
    req.once('close', onClose)
  })
}
