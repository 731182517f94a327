import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { CALLBACK_FAILED, type UserCallbacks } from '../user-callback.js'
import { type BodyTooLargeError, sendJsonError, UploadTimeoutError } from './errors.js'
import type { ForwardedInfo } from './hop-by-hop.js'
import { isJsonRequest } from './json-fields.js'
import { declaredBodyLength, requestHasBody } from './request-body.js'
import { rewriteTarget, toOriginForm } from './request-target.js'
import type { ForwardRequest } from './types.js'

/**
 * Request intake: what of the client's request is forwarded (method, path, body), decided before
 * any backend is involved. Each step answers either the value or why the request is refused.
 */

/** The path is refused (`invalid`) or the user's rewrite function threw (`rewrite_failed`). */
export type PathRefusal = 'invalid' | 'rewrite_failed'

/** The origin-form path to forward, rewritten and re-checked, or why it cannot be forwarded. */
export function forwardedPath(
  input: ForwardRequest,
  rewrite: ((path: string) => string) | undefined,
  callbacks: UserCallbacks,
): string | PathRefusal {
  const path = toOriginForm(input.path ?? input.req.url ?? '/')
  if (path === null) return 'invalid'
  if (rewrite === undefined) return path
  const rewritten = callbacks.call('rewrite', rewriteTarget, path, rewrite)
  if (rewritten === CALLBACK_FAILED) return 'rewrite_failed'
  return rewritten ?? 'invalid'
}

export function refusePath(req: IncomingMessage, res: ServerResponse, refusal: PathRefusal): void {
  if (refusal === 'invalid') {
    sendJsonError(
      req,
      res,
      400,
      'invalid_request_target',
      'the request target is not a path the gateway forwards',
    )
  } else {
    sendJsonError(req, res, 500, 'internal_error', 'the rewrite function failed')
  }
}

/** 408 for a body that did not arrive in time, 413 for one that is too large. */
export function refuseBody(
  req: IncomingMessage,
  res: ServerResponse,
  error: BodyTooLargeError | UploadTimeoutError,
): void {
  if (error instanceof UploadTimeoutError) sendJsonError(req, res, 408, error.code, error.message)
  else
    sendJsonError(
      req,
      res,
      413,
      'body_too_large',
      `the request body is larger than ${error.limitBytes} bytes`,
    )
}

/** How the body is to be read, from what the request declares. */
export type BodyPlan =
  | { kind: 'none' }
  | { kind: 'too_large' }
  | { kind: 'consumed' }
  /** Read up to `bufferBytes` into memory before picking a backend; a longer body then streams. */
  | { kind: 'read'; bufferBytes: number }

const NO_BODY: BodyPlan = { kind: 'none' }
const TOO_LARGE: BodyPlan = { kind: 'too_large' }
const CONSUMED: BodyPlan = { kind: 'consumed' }

export function bodyPlan(input: ForwardRequest, maxReplayBodyBytes: number, maxBodyBytes: number): BodyPlan {
  const req = input.req
  if (!requestHasBody(req)) return NO_BODY
  if (req.readableEnded) return CONSUMED
  const declared = declaredBodyLength(req)
  if (declared > maxBodyBytes) return TOO_LARGE
  // A body of unknown length is read whole (it is bounded by maxBodyBytes), so no byte of one
  // that turns out too large reaches a backend; so is one whose `model` or prompt decides the backend.
  const routesByBody =
    (input.readModel === true && input.model === undefined) ||
    (input.readPrompt !== undefined && input.prompt === undefined)
  const whole = declared < 0 || (routesByBody && isJsonRequest(req))
  return { kind: 'read', bufferBytes: whole ? maxBodyBytes : maxReplayBodyBytes }
}

/** The `X-Forwarded-*` facts for the backend. */
export function forwardedInfo(input: ForwardRequest): ForwardedInfo {
  const req: IncomingMessage = input.req
  const peerIp = req.socket.remoteAddress ?? ''
  return {
    clientIp: input.clientIp ?? peerIp,
    protocol: input.protocol ?? ((req.socket as TLSSocket).encrypted ? 'https' : 'http'),
    host: input.host ?? req.headers.host,
    trustProxy: input.trustProxy === true,
    peerIp,
  }
}
