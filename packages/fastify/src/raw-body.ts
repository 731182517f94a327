import { Transform, type TransformCallback } from 'node:stream'
import type { FastifyReply, FastifyRequest, RequestPayload } from 'fastify'

const RAW_BODY = Symbol('tollgate.rawBody')

interface KeptBody {
  readonly chunks: Buffer[]
  /** The bytes are copied as they stream to the parser; otherwise the parser hands them over. */
  readonly teed: boolean
}

interface WithRawBody {
  [RAW_BODY]?: KeptBody
}

const JSON_TYPE = /^\s*application\/json\s*(?:;|$)/i

/** Whether tollgate's own `application/json` parser reads this request's body (see `forwardJsonBody`). */
function readByJsonParser(request: FastifyRequest): boolean {
  const type = request.headers['content-type']
  return type !== undefined && JSON_TYPE.test(type)
}

/**
 * A `preParsing` hook for forward routes: the body passes through to the route's parser while its
 * bytes are kept, so the backend receives exactly what the client sent. A JSON body needs no copy:
 * `forwardJsonBody` keeps the Buffer Fastify collected.
 */
export function keepRawBody(
  request: FastifyRequest,
  _reply: FastifyReply,
  payload: RequestPayload,
  done: (err: Error | null, stream?: RequestPayload) => void,
): void {
  const chunks: Buffer[] = []
  const teed = !readByJsonParser(request)
  ;(request as WithRawBody)[RAW_BODY] = { chunks, teed }
  if (!teed) {
    done(null, payload)
    return
  }
  const tee = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      chunks.push(chunk)
      callback(null, chunk)
    },
  })
  payload.on('error', (error) => tee.destroy(error))
  done(null, payload.pipe(tee))
}

/** Whether `keepRawBody` runs for this request, i.e. it is on a forward route. */
export function isKeepingRawBody(request: FastifyRequest): boolean {
  return (request as WithRawBody)[RAW_BODY] !== undefined
}

/** Keeps bytes a parser read, unless `keepRawBody` already copies them. */
export function keepParsedBytes(request: FastifyRequest, bytes: Buffer): void {
  const kept = (request as WithRawBody)[RAW_BODY]
  if (kept !== undefined && !kept.teed && bytes.length > 0) kept.chunks.push(bytes)
}

/** The bytes `keepRawBody` kept, or undefined when the request had no body. */
export function rawBodyOf(request: FastifyRequest): Buffer | undefined {
  const chunks = (request as WithRawBody)[RAW_BODY]?.chunks
  if (chunks === undefined || chunks.length === 0) return undefined
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}
