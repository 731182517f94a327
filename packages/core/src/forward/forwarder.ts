import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import type { Dispatcher } from 'undici'
import { checkOptionObject, quote } from '../balance/config.js'
import { BalancerError } from '../balance/errors.js'
import type { AttemptOutcome, BackendLease, Balancer, PickContext } from '../balance/types.js'
import {
  BodyTooLargeError,
  CLIENT_CLOSED,
  ClientClosedError,
  sendJsonError,
  sseErrorEvent,
} from './errors.js'
import { downstreamResponseHeaders, InvalidHeaderValueError, upstreamRequestHeaders } from './hop-by-hop.js'
import { declaredBodyLength, readReplayableBody, requestHasBody, StreamedBody } from './replay-body.js'
import {
  backendPath,
  compilePathRewrite,
  type PathRewrite,
  rewriteTarget,
  toOriginForm,
} from './request-target.js'
import { parseRetryAfter } from './retry-after.js'
import { RetryBudget, type RetryBudgetOptions } from './retry-budget.js'
import { type UpstreamPoolOptions, UpstreamPools } from './upstream-pools.js'

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
   * The framework's own request (Fastify request, Express req), handed to the `fairness`
   * functions when the request has to wait for a full backend.
   */
  request?: unknown
}

export interface ForwarderOptions extends UpstreamPoolOptions {
  balancer: Balancer
  /**
   * Pools to share between forwarders (one forwarder per route, one set of connections). When
   * given, the timeout options belong to it, and `close()` leaves it open for its owner.
   */
  pools?: UpstreamPools
  /** Attempts per request, the first included. Default 3. */
  maxAttempts?: number
  /** Shared cap on retries across requests; `false` leaves only `maxAttempts`. Default `{ ratio: 0.2, minRetriesPerSecond: 10, windowSeconds: 10 }`. */
  retryBudget?: RetryBudgetOptions | RetryBudget | false
  /** Bodies up to this size are buffered so a failed attempt can be replayed; larger ones stream, without retry. Default 1 MiB. */
  maxReplayBodyBytes?: number
  /** Bodies above this get 413. Default 10 MiB; `Infinity` for no limit. */
  maxBodyBytes?: number
  /** Path rewrite for every request (a request's own `rewrite` wins). */
  rewrite?: PathRewrite
  /** Sees what should never happen (a balancer throwing something other than a `BalancerError`, a `finish` that throws); for logging. */
  onUnexpectedError?: (error: unknown) => void
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

const NONE_TRIED: ReadonlySet<string> = new Set()
const EMPTY_HEADERS: string[] = []
const EVENT_STREAM = /^\s*text\/event-stream/i

/** Failures where the backend cannot have started on the request, so another backend may take it. */
const RETRYABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ECONNABORTED',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_DESTROYED',
])

function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown }).then === 'function'
}

function checkInteger(name: string, value: number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback
  if (!(Number.isInteger(value) && value >= min) && value !== Number.POSITIVE_INFINITY) {
    throw new TypeError(`${name} must be an integer >= ${min}, got ${quote(value)}`)
  }
  return value
}

const ATTEMPT_PENDING = 0
const ATTEMPT_DISCARDING = 1
const ATTEMPT_STREAMING = 2
const ATTEMPT_DONE = 3

/**
 * One dispatch to one backend: undici's handler for it, and the owner of its lease, which it
 * finishes exactly once whatever happens.
 */
class Attempt implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null
  private phase = ATTEMPT_PENDING
  private reported = false
  private status = 0
  private latencyMs = 0
  private retryAfterMs: number | undefined
  private readonly startedAt = performance.now()
  private onDrain: (() => void) | undefined
  /** The response is an event stream; `tail` holds its last four bytes to find event boundaries. */
  private sse = false
  private tail = 0
  private bytesWritten = 0

  constructor(
    private readonly exchange: Exchange,
    readonly lease: BackendLease,
  ) {}

  /** The client went away. */
  cancel(): void {
    if (this.phase === ATTEMPT_DONE || this.phase === ATTEMPT_DISCARDING) return
    // Before the request is on a socket there is no controller yet: onRequestStart aborts then.
    this.controller?.abort(CLIENT_CLOSED)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.exchange.closed) controller.abort(CLIENT_CLOSED)
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    this.latencyMs = performance.now() - this.startedAt
    this.status = statusCode
    const exchange = this.exchange
    if (exchange.closed) {
      controller.abort(CLIENT_CLOSED)
      return
    }
    if (statusCode === 429 || statusCode === 503) this.retryAfterMs = parseRetryAfter(headers['retry-after'])
    if ((statusCode === 502 || statusCode === 503 || statusCode === 429) && exchange.claimRetry()) {
      // The body is left to drain so the connection can be reused; nothing of it is sent.
      this.phase = ATTEMPT_DISCARDING
      this.report(false, undefined)
      exchange.retryAfterStatus(statusCode, this.retryAfterMs)
      return
    }
    if (!exchange.commit(statusCode, headers)) {
      this.phase = ATTEMPT_DONE
      this.report(false, undefined)
      controller.abort(CLIENT_CLOSED)
      return
    }
    this.phase = ATTEMPT_STREAMING
    const contentType = headers['content-type']
    if (typeof contentType === 'string' && EVENT_STREAM.test(contentType)) {
      this.sse = true
      // The first token may be seconds away; the client should see the stream open now.
      exchange.res.flushHeaders()
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.phase !== ATTEMPT_STREAMING || this.exchange.closed) return
    const res = this.exchange.res
    if (this.sse) this.trackTail(chunk)
    if (!res.write(chunk)) {
      controller.pause()
      this.onDrain ??= () => this.controller?.resume()
      res.once('drain', this.onDrain)
    }
  }

  onResponseEnd(): void {
    if (this.phase !== ATTEMPT_STREAMING) return
    this.phase = ATTEMPT_DONE
    this.exchange.res.end()
    this.report(this.status < 500 && this.status !== 429, undefined)
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    const phase = this.phase
    if (phase === ATTEMPT_DONE || phase === ATTEMPT_DISCARDING) return
    this.phase = ATTEMPT_DONE
    if (phase === ATTEMPT_PENDING) this.latencyMs = performance.now() - this.startedAt
    if (error === CLIENT_CLOSED || error instanceof ClientClosedError) {
      // A cancellation says nothing about the backend's health or speed.
      this.report(phase === ATTEMPT_PENDING || (this.status < 500 && this.status !== 429), undefined, true)
      return
    }
    if (error instanceof BodyTooLargeError) {
      this.report(true, undefined)
      this.exchange.attemptFailed(error)
      return
    }
    this.report(false, error)
    if (phase === ATTEMPT_STREAMING) this.exchange.streamFailed(this.sse && this.atEventBoundary())
    else this.exchange.attemptFailed(error)
  }

  private report(ok: boolean, error: Error | undefined, cancelled = false): void {
    if (this.reported) return
    this.reported = true
    const outcome: AttemptOutcome = {
      ok,
      status: this.status === 0 ? undefined : this.status,
      latencyMs: this.latencyMs,
      retryAfterMs: this.retryAfterMs,
      error,
      cancelled,
    }
    try {
      this.lease.finish(outcome)
    } catch (err) {
      this.exchange.unexpected(err)
    }
  }

  private trackTail(chunk: Buffer): void {
    const length = chunk.length
    for (let i = length > 4 ? length - 4 : 0; i < length; i++)
      this.tail = ((this.tail << 8) | chunk[i]!) >>> 0
    this.bytesWritten += length
  }

  /** The stream ended between two events, so an appended error event cannot merge into a half-sent one. */
  private atEventBoundary(): boolean {
    if (this.bytesWritten === 0) return true
    const lastTwo = this.tail & 0xffff
    return lastTwo === 0x0a0a || lastTwo === 0x0d0d || this.tail === 0x0d0a0d0a
  }
}

/** The state of one forwarded request across its attempts. */
class Exchange {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  closed = false
  private resolve!: () => void
  private method = 'GET'
  private path = '/'
  private body: Buffer | StreamedBody | null = null
  private replayable = true
  private headers = EMPTY_HEADERS
  private attempts = 0
  private tried: Set<string> | undefined
  private current: Attempt | undefined
  private abortController: AbortController | undefined
  private sawBadGateway = false
  private sawOverload = false
  private timedOut = false
  private retryAfterMs: number | undefined

  constructor(
    private readonly forwarder: HttpForwarder,
    private readonly input: ForwardRequest,
  ) {
    this.req = input.req
    this.res = input.res
  }

  start(): Promise<void> {
    const { req, res, input, forwarder } = this
    if (res.writableEnded || res.destroyed) return Promise.resolve()
    const done = new Promise<void>((resolve) => {
      this.resolve = resolve
    })
    res.once('close', () => this.onResponseClose())

    const method = input.method ?? req.method ?? 'GET'
    if (method === 'CONNECT') {
      sendJsonError(req, res, 405, 'method_not_allowed', 'CONNECT cannot be forwarded')
      return done
    }
    this.method = method

    let path = toOriginForm(input.path ?? req.url ?? '/')
    const rewrite = input.rewrite ?? forwarder.rewrite
    if (path !== null && rewrite !== undefined) path = rewriteTarget(path, rewrite)
    if (path === null) {
      sendJsonError(
        req,
        res,
        400,
        'invalid_request_target',
        'the request target is not a path the gateway forwards',
      )
      return done
    }
    this.path = path

    const maxBodyBytes = forwarder.maxBodyBytes
    if (input.body !== undefined) {
      if (input.body.length > maxBodyBytes) return this.tooLarge(done)
      this.body = input.body
    } else if (requestHasBody(req)) {
      if (req.readableEnded) {
        sendJsonError(
          req,
          res,
          500,
          'body_already_consumed',
          'a body parser consumed the request body; pass its original bytes as `body` to forward()',
        )
        return done
      }
      const declared = declaredBodyLength(req)
      if (declared > maxBodyBytes) return this.tooLarge(done)
      if (declared > forwarder.maxReplayBodyBytes) {
        this.body = new StreamedBody(req, [], 0, maxBodyBytes)
        this.replayable = false
      } else {
        readReplayableBody(req, forwarder.maxReplayBodyBytes, maxBodyBytes).then(
          (body) => {
            this.body = body
            this.replayable = !(body instanceof StreamedBody)
            this.begin()
          },
          (err: unknown) => {
            if (err instanceof BodyTooLargeError) this.tooLarge(done)
          },
        )
        return done
      }
    }
    this.begin()
    return done
  }

  private tooLarge(done: Promise<void>): Promise<void> {
    if (!this.closed) {
      sendJsonError(
        this.req,
        this.res,
        413,
        'body_too_large',
        `the request body is larger than ${this.forwarder.maxBodyBytes} bytes`,
      )
    }
    return done
  }

  private begin(): void {
    if (this.closed) return
    const { req, input } = this
    const peerIp = req.socket.remoteAddress ?? ''
    try {
      this.headers = upstreamRequestHeaders(
        req.rawHeaders,
        {
          clientIp: input.clientIp ?? peerIp,
          protocol: input.protocol ?? ((req.socket as TLSSocket).encrypted ? 'https' : 'http'),
          host: input.host ?? req.headers.host,
          trustProxy: input.trustProxy === true,
          peerIp,
        },
        this.body instanceof StreamedBody,
      )
    } catch (err) {
      if (!(err instanceof InvalidHeaderValueError)) throw err
      sendJsonError(req, this.res, 400, 'invalid_header_value', err.message)
      return
    }
    this.forwarder.budget?.recordRequest()
    this.next()
  }

  /** Created only when the balancer has to queue the request: most requests never need it. */
  private readonly waitSignal = (): AbortSignal => {
    this.abortController ??= new AbortController()
    return this.abortController.signal
  }

  private next(): void {
    if (this.closed) return
    let acquired: BackendLease | PromiseLike<BackendLease>
    try {
      acquired = this.forwarder.balancer.acquire(this.input, this.tried ?? NONE_TRIED, this.waitSignal)
    } catch (err) {
      this.acquireFailed(err)
      return
    }
    if (isPromiseLike(acquired)) {
      acquired.then(
        (lease) => this.dispatchTo(lease),
        (err: unknown) => this.acquireFailed(err),
      )
    } else {
      this.dispatchTo(acquired)
    }
  }

  private dispatchTo(lease: BackendLease): void {
    if (this.closed) {
      // Acquired after the client left (a balancer that ignores the signal): give it back unused.
      try {
        lease.finish({ ok: true, latencyMs: 0, cancelled: true })
      } catch (err) {
        this.unexpected(err)
      }
      return
    }
    this.attempts++
    const attempt = new Attempt(this, lease)
    this.current = attempt
    const backend = lease.backend
    let pool: Dispatcher
    try {
      pool = this.forwarder.pools.poolFor(backend)
    } catch (err) {
      attempt.onResponseError(undefined, err as Error)
      return
    }
    pool.dispatch(
      {
        path: backendPath(backend.url.pathname, this.path),
        method: this.method,
        headers: this.headers,
        body: this.body,
      },
      attempt,
    )
  }

  private acquireFailed(err: unknown): void {
    if (this.closed) return
    if (!(err instanceof BalancerError)) {
      this.unexpected(err)
      sendJsonError(this.req, this.res, 500, 'internal_error', 'the gateway failed to pick a backend')
      return
    }
    if (this.attempts === 0 || !(this.sawBadGateway || this.sawOverload || this.timedOut)) {
      sendJsonError(this.req, this.res, err.status, err.code, err.message, err.retryAfterMs, err.details)
      return
    }
    this.noteRetryAfter(err.retryAfterMs)
    this.fail()
  }

  /** Takes a retry if this request may still have one. */
  claimRetry(): boolean {
    if (this.closed || !this.replayable || this.attempts >= this.forwarder.maxAttempts) return false
    const budget = this.forwarder.budget
    return budget === null || budget.tryRetry()
  }

  /** A backend answered 502/503/429 and a retry was claimed. */
  retryAfterStatus(status: number, retryAfterMs: number | undefined): void {
    if (status === 502) this.sawBadGateway = true
    else this.sawOverload = true
    this.noteRetryAfter(retryAfterMs)
    this.retry()
  }

  /** An attempt failed before any response byte. */
  attemptFailed(error: Error): void {
    if (this.closed) return
    if (error instanceof BodyTooLargeError) {
      sendJsonError(this.req, this.res, 413, 'body_too_large', error.message)
      return
    }
    const code = errorCode(error)
    if (code === 'UND_ERR_HEADERS_TIMEOUT') {
      // A stalled backend: undici has already closed that connection, which cancels its work,
      // so another backend may take the request while the client still waits for a first byte.
      this.timedOut = true
      if (this.claimRetry()) this.retry()
      else this.fail()
      return
    }
    if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') {
      sendJsonError(
        this.req,
        this.res,
        400,
        'invalid_request_body',
        'the request body does not match its Content-Length',
      )
      return
    }
    this.sawBadGateway = true
    if (code !== undefined && RETRYABLE_CODES.has(code) && this.claimRetry()) this.retry()
    else this.fail()
  }

  /** Writes the backend's status and headers; false (and the client answered) when they cannot be sent. */
  commit(status: number, headers: IncomingHttpHeaders): boolean {
    try {
      this.res.writeHead(status, downstreamResponseHeaders(headers))
      return true
    } catch {
      sendJsonError(
        this.req,
        this.res,
        502,
        'bad_gateway',
        'the backend sent a response header that cannot be passed on',
      )
      return false
    }
  }

  /** The backend failed after the response started: end it so the client cannot take it for complete. */
  streamFailed(canAppendSseEvent: boolean): void {
    if (this.closed) return
    if (canAppendSseEvent) this.res.end(sseErrorEvent('the backend failed while streaming the response'))
    else this.res.destroy()
  }

  unexpected(error: unknown): void {
    this.forwarder.onUnexpectedError?.(error)
  }

  private retry(): void {
    const current = this.current
    if (current !== undefined) {
      this.tried ??= new Set()
      this.tried.add(current.lease.backend.id)
    }
    this.next()
  }

  private noteRetryAfter(retryAfterMs: number | undefined): void {
    if (retryAfterMs !== undefined && (this.retryAfterMs === undefined || retryAfterMs < this.retryAfterMs)) {
      this.retryAfterMs = retryAfterMs
    }
  }

  /** Every attempt failed: one answer summing them up. */
  private fail(): void {
    const { req, res } = this
    if (this.timedOut && !this.sawBadGateway && !this.sawOverload) {
      sendJsonError(req, res, 504, 'backend_timeout', 'the backend did not start answering in time')
    } else if (this.sawBadGateway || !this.sawOverload) {
      sendJsonError(req, res, 502, 'bad_gateway', 'no backend could be reached')
    } else {
      sendJsonError(
        req,
        res,
        503,
        'backend_unavailable',
        'every backend tried is overloaded',
        this.retryAfterMs,
      )
    }
  }

  private onResponseClose(): void {
    if (!this.res.writableFinished) {
      this.closed = true
      this.current?.cancel()
      this.abortController?.abort(CLIENT_CLOSED)
      if (this.body instanceof StreamedBody) this.body.destroy()
    }
    // While shutting down, a keep-alive connection left idle by this response would hold the
    // server's close() open until the client's idle timeout; in-flight responses end it instead.
    if (this.forwarder.shuttingDown) {
      const socket = this.req.socket
      if (!socket.destroyed) socket.end()
    }
    this.resolve()
  }
}

class HttpForwarder implements Forwarder {
  readonly balancer: Balancer
  readonly pools: UpstreamPools
  readonly budget: RetryBudget | null
  readonly maxAttempts: number
  readonly maxReplayBodyBytes: number
  readonly maxBodyBytes: number
  readonly rewrite: ((path: string) => string) | undefined
  readonly onUnexpectedError: ((error: unknown) => void) | undefined
  shuttingDown = false
  private readonly ownsPools: boolean

  constructor(options: ForwarderOptions) {
    if (typeof options?.balancer?.acquire !== 'function') {
      throw new TypeError('createForwarder needs { balancer }: an object with acquire(ctx, exclude, signal)')
    }
    this.balancer = options.balancer
    const timeoutNames = [
      'connectTimeoutMs',
      'firstByteTimeoutMs',
      'idleTimeoutMs',
      'keepAliveTimeoutMs',
      'connectionsPerBackend',
    ] as const
    if (options.pools !== undefined) {
      const misplaced = timeoutNames.find((name) => options[name] !== undefined)
      if (misplaced !== undefined) {
        throw new TypeError(`${misplaced} is set on the shared UpstreamPools, not next to \`pools\``)
      }
      this.pools = options.pools
      this.ownsPools = false
    } else {
      this.pools = new UpstreamPools(options)
      this.ownsPools = true
    }
    this.maxAttempts = checkInteger('maxAttempts', options.maxAttempts, 3, 1)
    if (this.maxAttempts === Number.POSITIVE_INFINITY) {
      throw new TypeError('maxAttempts must be finite, got Infinity')
    }
    this.maxReplayBodyBytes = checkInteger('maxReplayBodyBytes', options.maxReplayBodyBytes, 1024 * 1024, 0)
    this.maxBodyBytes = checkInteger('maxBodyBytes', options.maxBodyBytes, 10 * 1024 * 1024, 1)
    const budget = options.retryBudget
    if (!(budget instanceof RetryBudget)) {
      checkOptionObject(budget, 'retryBudget', ['ratio', 'minRetriesPerSecond', 'windowSeconds'], true)
    }
    if (options.onUnexpectedError !== undefined && typeof options.onUnexpectedError !== 'function') {
      throw new TypeError(
        `onUnexpectedError must be a function (error) => void, got ${quote(options.onUnexpectedError)}`,
      )
    }
    this.budget = budget === false ? null : budget instanceof RetryBudget ? budget : new RetryBudget(budget)
    this.rewrite = options.rewrite === undefined ? undefined : compilePathRewrite(options.rewrite)
    this.onUnexpectedError = options.onUnexpectedError
  }

  forward(input: ForwardRequest): Promise<void> {
    return new Exchange(this, input).start()
  }

  closeFor(backendId: string): Promise<void> {
    return this.pools.closeFor(backendId)
  }

  close(): Promise<void> {
    this.shuttingDown = true
    return this.ownsPools ? this.pools.close() : Promise.resolve()
  }

  destroy(): Promise<void> {
    this.shuttingDown = true
    return this.ownsPools ? this.pools.destroy() : Promise.resolve()
  }
}

/** A forwarder over undici: validates `options` now, so bad configuration fails at startup. */
export function createForwarder(options: ForwarderOptions): Forwarder {
  return new HttpForwarder(options)
}
