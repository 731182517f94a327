import {
  BodyTooLargeError,
  type ForwardOptions,
  type Gateway,
  InvalidJsonBodyError,
  isJsonRequest,
  type Logger,
  modelFromJson,
  modelOf,
  readRequestBody,
  sendJsonError,
} from '@tollgate/core/internal'
import type { Request, RequestHandler, Response } from 'express'
import { keptRawBody } from './raw-body.js'

/**
 * The body to forward when a body parser already consumed the stream: the bytes
 * `keepRawBody` kept, else the parsed value serialised again (JSON, text or raw).
 */
function bodyAfterParser(req: Request, onReserialised: () => void): Buffer | undefined {
  const kept = keptRawBody(req)
  if (kept !== undefined) return kept
  const parsed: unknown = req.body
  if (Buffer.isBuffer(parsed)) return parsed
  if (typeof parsed === 'string') return Buffer.from(parsed)
  if (parsed !== undefined && isJsonRequest(req)) {
    onReserialised()
    return Buffer.from(JSON.stringify(parsed))
  }
  return undefined
}

/**
 * Whether the connecting peer is a proxy the app trusts, by Express's own `trust proxy` test
 * (`'trust proxy fn'`): only then is its X-Forwarded-For chain kept. A truthy setting alone is
 * not enough: with `'10.0.0.0/8'`, a client connecting from elsewhere writes its own header.
 */
function peerIsTrusted(req: Request): boolean {
  const trust = req.app.get('trust proxy fn') as ((address: string, hop: number) => boolean) | undefined
  const peer = req.socket.remoteAddress
  return typeof trust === 'function' && peer !== undefined && trust(peer, 0)
}

/** The Express handler behind `gate.forward()`. */
export function forwardMiddleware(
  gateway: Gateway<Request>,
  options: ForwardOptions<Request> | undefined,
  logger: Logger,
): RequestHandler {
  const route = gateway.route(options)
  const { forwarder } = gateway
  let warned = false
  const warnOnce = () => {
    if (warned) return
    warned = true
    logger.warn(
      'tollgate: a body parser ran before gate.forward(); the parsed JSON is forwarded re-serialised. ' +
        'Pass { verify: keepRawBody } to express.json() to forward the exact bytes.',
    )
  }

  function send(
    req: Request,
    res: Response,
    body: Buffer | undefined,
    model: string | undefined,
  ): Promise<void> {
    return forwarder.forward({
      req,
      res,
      // A router mounted at a path strips it from `req.url`; the backend must see the whole path.
      path: req.originalUrl,
      clientIp: req.ip,
      protocol: req.protocol,
      host: req.host,
      trustProxy: peerIsTrusted(req),
      body,
      model,
      hashKey: route.hashKey?.(req, req.headers),
      rewrite: route.rewrite,
      request: req,
    })
  }

  return function tollgateForward(req, res) {
    if (req.readableEnded) {
      return send(req, res, bodyAfterParser(req, warnOnce), modelOf(req.body))
    }
    // Model routing needs the `model` field: read the body once and forward the same bytes.
    if (gateway.routesByModel && isJsonRequest(req)) {
      return readRequestBody(req, gateway.maxBodyBytes).then(
        (body) => {
          let model: string | undefined
          try {
            model = modelFromJson(body)
          } catch (error) {
            if (!(error instanceof InvalidJsonBodyError)) throw error
            sendJsonError(req, res, 400, 'invalid_json', error.message)
            return
          }
          return send(req, res, body, model)
        },
        (error: unknown) => {
          if (error instanceof BodyTooLargeError)
            sendJsonError(req, res, 413, 'body_too_large', error.message)
          else res.destroy()
        },
      )
    }
    return send(req, res, undefined, undefined)
  }
}
