import {
  type ForwardOptions,
  type Gateway,
  isJsonRequest,
  type Logger,
  TokenRoute,
} from '@tollgate/core/internal'
import type { Request, RequestHandler } from 'express'
import { keptRawBody } from './raw-body.js'
import { countedBy, deferredTokens } from './token-handoff.js'

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

/** The Express handler behind `gate.forward()`: translates the request into one gateway call. */
export function forwardMiddleware(
  gateway: Gateway<Request>,
  options: ForwardOptions<Request> | undefined,
  logger: Logger,
  defaultTokens: TokenRoute<Request> | null = null,
): RequestHandler {
  const route = gateway.route(options)
  let warned = false
  const warnOnce = () => {
    if (warned) return
    warned = true
    logger.warn(
      'tollgate: a body parser ran before gate.forward(); the parsed JSON is forwarded re-serialised. ' +
        'Pass { verify: keepRawBody } to express.json() to forward the exact bytes.',
    )
  }

  return function tollgateForward(req, res) {
    const input = {
      req,
      res,
      request: req,
      // A router mounted at a path strips it from `req.url`; the backend must see the whole path.
      path: req.originalUrl,
      clientIp: req.ip,
      clientKey: req.rateLimit?.key,
      protocol: req.protocol,
      host: req.host,
      trustProxy: peerIsTrusted(req),
      // Unread, the body is read (and limited) by the gateway itself.
      body: req.readableEnded ? bodyAfterParser(req, warnOnce) : undefined,
    }
    // A reservation made by gate.limit({ tokens }) is settled from the usage; a budget it left to
    // this forward is reserved here, from the body; else defaultTokens apply.
    const tokens = TokenRoute.of<Request>(req.rateLimit?.tokens) ?? deferredTokens(req) ?? defaultTokens
    if (tokens === null) return gateway.forward(route, input)
    return tokens.forward(gateway, route, input, req.rateLimit, countedBy(req))
  }
}
