import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { PickContext } from '../balance/types.js'
import type { RequestEvents } from '../observe/events.js'

/**
 * Watches one forwarded response as it passes through: where token
 * accounting reads SSE chunks and a JSON body's `usage`. Each method is optional; a throw is
 * reported to `onUnexpectedError` and the response goes on.
 */
export interface ForwardObserver {
  /**
   * The buffered request body just before the first dispatch (never called for a streamed body);
   * a Buffer returned replaces it for every attempt (e.g. to add `stream_options.include_usage`).
   */
  requestBody?(body: Buffer): Buffer | undefined
  /** The backend's final status and headers, as they are passed on. */
  responseStart?(status: number, headers: IncomingHttpHeaders): void
  /**
   * One chunk of the response body. A Buffer returned is passed on instead (an empty one: nothing
   * of this chunk), e.g. to take out an event the client did not ask for.
   */
  responseData?(chunk: Buffer): Buffer | undefined
  /** The response ended; `complete` is false when it was cut (backend failure, client gone). */
  responseEnd?(complete: boolean): void
  /**
   * The client went away while a backend had the request (it was on its way or being answered):
   * the backend may have done the work all the same. Called before `responseEnd`, if that comes.
   */
  abandoned?(): void
  /** After the response: tells `events` the token counts it read, when it read any. */
  reportTokens?(events: RequestEvents): void
}

/**
 * One request to forward, as an adapter hands it over. Fastify passes `request.raw`/`reply.raw`
 * (after `reply.hijack()`), Express its `req`/`res`. Also the balancer's `PickContext`, so
 * `model` and `hashKey` reach the picker without another object.
 */
export interface ForwardRequest extends PickContext {
  req: IncomingMessage
  res: ServerResponse
  /** Default `req.method`. */
  method?: string
  /** Path and query to forward; default `req.url`. Normalised to origin-form before use. */
  path?: string
  /** Replaces the forwarder's `rewrite` for this request (compile it once per route with `compilePathRewrite`). */
  rewrite?: (path: string) => string
  /** The client's address with the app's trust-proxy setting applied (Fastify `request.ip`, Express `req.ip`). Default: the socket's. */
  clientIp?: string
  /**
   * The key the route's rate limits counted this request under (`request.rateLimit.key`), when
   * limits ran: the default `fairness` tenant.
   */
  clientKey?: string
  /** `http` or `https` as the client used it (Fastify `request.protocol`, Express `req.protocol`). Default: from the socket. */
  protocol?: string
  /** The host the client asked for (Fastify `request.host`, Express `req.host`). Default: the `Host` header. */
  host?: string
  /**
   * The app trusts the proxy in front of it: the incoming `X-Forwarded-For` chain is kept and the
   * connecting peer appended. Otherwise `X-Forwarded-For` is exactly `clientIp`. Default false.
   */
  trustProxy?: boolean
  /**
   * The request body's original bytes when a framework parser already read them; undefined means
   * "read it from `req`". A Buffer is always replayable (it is in memory already).
   */
  body?: Buffer
  /**
   * Read `model` from a JSON body (when `model` is not given): the whole body is read before a
   * backend is picked, its top level scanned, and a body whose top level is not well-formed JSON gets 400.
   */
  readModel?: boolean
  /**
   * Reads the prompt a strategy routes by (`prefix-affinity`) from the body's top-level
   * `messages`, `prompt` or `input` (when `prompt` is not given); the whole body is read first.
   */
  readPrompt?: (fields: Record<string, unknown>) => string | undefined
  /**
   * The framework's own request (Fastify request, Express req), handed to the `fairness`
   * functions when the request has to wait for a full backend.
   */
  request?: unknown
  /** Sees the response pass through (see `ForwardObserver`). */
  observer?: ForwardObserver
  /** Metrics, tracing and logs of this request (set by the gateway when something observes). */
  events?: RequestEvents
}

export interface Forwarder {
  /** Bodies above this many bytes get 413 (`Infinity`: no limit). */
  readonly maxBodyBytes: number
  /**
   * Forwards one request and answers the client: the backend's response streamed through, or a
   * JSON error. Resolves once the response is over (finished, or the client went away); never
   * rejects.
   */
  forward(input: ForwardRequest): Promise<void>
  /** Closes the connections to one backend after its in-flight requests (call when it is removed). */
  closeFor(backendId: string): Promise<void>
  /**
   * Closes every connection after in-flight requests complete; from now on the client connection
   * of each in-flight response is closed once that response ends, so a server's own close() is not
   * held open by idle keep-alive connections.
   */
  close(): Promise<void>
  /** Closes every connection now, failing in-flight requests. */
  destroy(): Promise<void>
}
