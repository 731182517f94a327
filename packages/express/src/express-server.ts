import { createServer, IncomingMessage, type Server, type ServerOptions, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { fail } from '@tollgate/core/internal'
import type { Application } from 'express'

/** What Express puts on every app (untyped in @types/express): the prototypes `app.handle` sets. */
interface AppPrototypes {
  request?: unknown
  response?: unknown
}

// Node's constructors are plain functions; @types/node declares them as classes.
const initRequest = IncomingMessage as unknown as (this: IncomingMessage, socket: Socket) => void
const initResponse = ServerResponse as unknown as (
  this: ServerResponse,
  req: IncomingMessage,
  options: unknown,
) => void

/** The server options `expressServer` accepts: all of Node's but the two classes it sets itself. */
export type ExpressServerOptions = Omit<ServerOptions, 'IncomingMessage' | 'ServerResponse'>

/**
 * An `http.Server` for an Express app, to use instead of `app.listen()`:
 * `expressServer(app).listen(3000)`. Express gives every request and response the app's
 * prototypes with `Object.setPrototypeOf` (`app.handle`); on Node 20 an object whose prototype
 * was changed that way outlives the young-generation collections, so every request's objects
 * are promoted to the old generation, and the collector's pauses become the latency tail.
 * This server creates requests and responses with the app's prototypes already in place, which
 * makes Express's call a no-op. Requests through mounted sub-apps still change prototype there.
 */
export function expressServer(app: Application, options: ExpressServerOptions = {}): Server {
  const { request, response } = app as Application & AppPrototypes
  if (
    typeof app !== 'function' ||
    typeof request !== 'object' ||
    request === null ||
    typeof response !== 'object' ||
    response === null
  ) {
    fail('expressServer(app)', 'an Express application (const app = express())', app)
  }
  // Plain constructor functions that call Node's: objects made instead with
  // `Reflect.construct(IncomingMessage, args, AppRequest)` are promoted just as the changed ones are.
  function AppRequest(this: IncomingMessage, socket: Socket): void {
    initRequest.call(this, socket)
  }
  AppRequest.prototype = request
  function AppResponse(this: ServerResponse, req: IncomingMessage, responseOptions: unknown): void {
    initResponse.call(this, req, responseOptions)
  }
  AppResponse.prototype = response
  return createServer(
    {
      ...options,
      IncomingMessage: AppRequest as unknown as typeof IncomingMessage,
      ServerResponse: AppResponse as unknown as typeof ServerResponse,
    },
    app,
  )
}
