import { nestsDeeperThan } from '@tollgate/core/internal'
import { errorCodes, type FastifyInstance, type FastifyRequest } from 'fastify'
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

/**
 * Forward routes parse JSON (so hooks can read `request.body`) only up to Fastify's own default
 * body limit and this nesting depth; a larger or deeper body is forwarded unparsed, and the
 * gateway reads its `model` by scanning the top level. Far above any chat request (tool schemas
 * included), far below where `JSON.parse` starts to block the event loop.
 */
const MAX_PARSED_DEPTH = 64

/**
 * Installs the parsers forward routes need: the catch-all above (unless the app has its own), and
 * an `application/json` parser that bounds what a forward route parses. A forward route's body
 * limit is `maxBodyBytes` (10 MiB by default), and `JSON.parse` of 10 MB of nested arrays blocks
 * the event loop for seconds. Every other route gets Fastify's own JSON parser, with the app's
 * poisoning settings and its body limit.
 */
export function addForwardBodyParsers(app: FastifyInstance): void {
  if (!app.hasContentTypeParser('*')) app.addContentTypeParser('*', forwardAnyBody)
  const config = app.initialConfig as {
    bodyLimit?: number
    onProtoPoisoning?: string
    onConstructorPoisoning?: string
  }
  const parsedLimit = config.bodyLimit ?? 1024 * 1024
  const parseJson = app.getDefaultJsonParser(
    (config.onProtoPoisoning ?? 'error') as 'error',
    (config.onConstructorPoisoning ?? 'error') as 'error',
  )
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    const bytes = body as Buffer
    if (!isKeepingRawBody(request)) return parseJson(request, bytes as never, done)
    if (bytes.length > parsedLimit || nestsDeeperThan(bytes, MAX_PARSED_DEPTH)) done(null, undefined)
    else parseJson(request, bytes as never, done)
  })
}
