import type { LimitedRoute, TokenRoute } from '@tollgate/core/internal'
import type { Request, RequestHandler } from 'express'

/** Marks the handlers `gate.forward()` makes, so `gate.limit()` can see one follows it. */
export const FORWARDS = Symbol('tollgate.forwards')
/** The request limits that counted a request, for a later token refusal to give the count back. */
const COUNTED = Symbol('tollgate.counted')
/** A token budget `gate.limit()` left to the `gate.forward()` after it, which reads the body first. */
const DEFERRED = Symbol('tollgate.deferredTokens')

interface Handoff {
  [COUNTED]?: LimitedRoute<Request>
  [DEFERRED]?: TokenRoute<Request>
}

export function markForward(handler: RequestHandler): RequestHandler {
  return Object.assign(handler, { [FORWARDS]: true })
}

export function recordCounted(req: Request, route: LimitedRoute<Request>): void {
  ;(req as Handoff)[COUNTED] = route
}

export function countedBy(req: Request): LimitedRoute<Request> | undefined {
  return (req as Handoff)[COUNTED]
}

export function deferTokens(req: Request, tokens: TokenRoute<Request>): void {
  ;(req as Handoff)[DEFERRED] = tokens
}

export function deferredTokens(req: Request): TokenRoute<Request> | undefined {
  return (req as Handoff)[DEFERRED]
}

interface Layer {
  handle?: unknown
  method?: string
}

/**
 * Whether a `gate.forward()` comes after `self` in the route being run (`app.post(path,
 * gate.limit(…), gate.forward())`): Express sets `req.route` while it runs a route's handlers, and
 * runs the layers of the request's method (or of every method) in order. A middleware mounted
 * with `app.use` runs outside any route and cannot tell (false). A route holds a handful of
 * layers: the scan costs less than remembering it.
 */
export function forwardFollows(req: Request, self: RequestHandler): boolean {
  const route = (req as { route?: { stack?: unknown; methods?: Record<string, boolean> } }).route
  const stack = route?.stack
  if (!Array.isArray(stack)) return false
  let method = req.method.toLowerCase()
  if (method === 'head' && route!.methods?.head !== true) method = 'get'
  let seen = false
  for (const layer of stack as Layer[]) {
    if (layer.method !== undefined && layer.method !== method) continue
    if (layer.handle === self) seen = true
    else if (seen && (layer.handle as { [FORWARDS]?: boolean } | undefined)?.[FORWARDS] === true) return true
  }
  return false
}
