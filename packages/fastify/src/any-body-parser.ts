import { errorCodes, type FastifyRequest } from 'fastify'
import { isKeepingRawBody } from './raw-body.js'

type Done = (error: Error | null, body?: unknown) => void

/**
 * A catch-all content-type parser. Fastify answers 415 to a body no parser claims, which would
 * keep forward routes from carrying multipart uploads (`/v1/audio/transcriptions`, `/v1/files`)
 * or binary bodies; on those routes the body is only read (and kept by `keepRawBody`) up to the
 * route's body limit. Every other route still gets Fastify's own 415.
 */
export function forwardAnyBody(request: FastifyRequest, payload: NodeJS.ReadableStream, done: Done): void {
  // Only forward routes run keepRawBody, before any parser (the route's handler is bound by now).
  if (!isKeepingRawBody(request)) {
    done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE())
    return
  }
  const limit = request.routeOptions.bodyLimit ?? Number.POSITIVE_INFINITY
  if (Number(request.headers['content-length']) > limit) {
    done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE())
    return
  }
  let received = 0
  let settled = false
  const settle = (error: Error | null) => {
    if (settled) return
    settled = true
    done(error, undefined)
  }
  payload.on('data', (chunk: Buffer) => {
    received += chunk.length
    if (received > limit) {
      settle(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE())
      ;(payload as NodeJS.ReadableStream & { destroy(): void }).destroy()
    }
  })
  payload.on('end', () => settle(null))
  payload.on('error', (error: Error) => settle(error))
}
