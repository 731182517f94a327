import { Transform, type TransformCallback } from 'node:stream'
import type { FastifyReply, FastifyRequest, RequestPayload } from 'fastify'

const RAW_BODY = Symbol('tollgate.rawBody')

interface WithRawBody {
  [RAW_BODY]?: Buffer[]
}

/**
 * A `preParsing` hook for forward routes: the body passes through to the route's parser while its
 * bytes are kept, so the backend receives exactly what the client sent, whichever parser (the
 * app's own included) reads it.
 */
export function keepRawBody(
  request: FastifyRequest,
  _reply: FastifyReply,
  payload: RequestPayload,
  done: (err: Error | null, stream?: RequestPayload) => void,
): void {
  const chunks: Buffer[] = []
  ;(request as WithRawBody)[RAW_BODY] = chunks
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

/** The bytes `keepRawBody` kept, or undefined when the request had no body. */
export function rawBodyOf(request: FastifyRequest): Buffer | undefined {
  const chunks = (request as WithRawBody)[RAW_BODY]
  if (chunks === undefined || chunks.length === 0) return undefined
  return chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
}
