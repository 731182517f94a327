import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http'
import { BalancerError } from '../balance/errors.js'
import type { RequestEvents } from '../observe/events.js'
import { BodyTooLargeError, sendJsonError, sseErrorEvent, UploadTimeoutError } from './errors.js'
import { errorCode, type FailoverPolicy } from './failover-policy.js'
import { FailureSummary } from './failure-summary.js'
import type { ForwarderSettings } from './forwarder-options.js'
import { downstreamResponseHeaders, InvalidHeaderValueError, upstreamRequestHeaders } from './hop-by-hop.js'
import { bodyPlan, forwardedInfo, forwardedPath, refuseBody, refusePath } from './intake.js'
import { InvalidJsonBodyError, isJsonRequest, topLevelFields } from './json-fields.js'
import { type DispatchOwner, LeaseDispatch } from './lease-dispatch.js'
import { promptOf } from './prompt-fields.js'
import type { Attempt } from './relay.js'
import { readRequestBody, StreamedBody } from './request-body.js'
import type { ForwardObserver, ForwardRequest } from './types.js'
import { UploadDeadline } from './upload-deadline.js'

/** What an exchange needs of the forwarder beyond its settings. */
export interface ExchangeHost extends ForwarderSettings {
  /** The forwarder is closing: client connections end with their responses. */
  readonly shuttingDown: boolean
}

/**
 * The state of one forwarded request across its attempts. It only coordinates: intake decides
 * what is forwarded, `LeaseDispatch` takes backends and dispatches, each `Attempt` relays one
 * response, the failover policy says what may be retried, `FailureSummary` words the final error.
 */
export class Exchange implements DispatchOwner {
  readonly req: IncomingMessage
  readonly res: ServerResponse
  readonly policy: FailoverPolicy
  readonly observer: ForwardObserver | undefined
  readonly events: RequestEvents | undefined
  closed = false
  private resolve!: () => void
  private body: Buffer | StreamedBody | null = null
  private replayable = true
  private dispatch: LeaseDispatch | undefined
  /** Created by the first failed attempt: most requests never need it. */
  private summary: FailureSummary | undefined
  private deadline: UploadDeadline | undefined

  constructor(
    private readonly host: ExchangeHost,
    private readonly input: ForwardRequest,
  ) {
    this.req = input.req
    this.res = input.res
    this.policy = host.policy
    this.observer = input.observer
    this.events = input.events
  }

  start(): Promise<void> {
    const res = this.res
    if (res.writableEnded || res.destroyed) return Promise.resolve()
    const done = new Promise<void>((resolve) => {
      this.resolve = resolve
    })
    res.once('close', () => this.onResponseClose())
    try {
      this.intake()
    } catch (err) {
      this.failedUnexpectedly(err)
    }
    return done
  }

  /** Something that should never throw did: the client still gets an answer. */
  private failedUnexpectedly(err: unknown): void {
    this.unexpected(err)
    if (!this.closed)
      sendJsonError(this.req, this.res, 500, 'internal_error', 'the gateway failed to forward the request')
  }

  private intake(): void {
    const { req, res, input, host } = this

    const method = input.method ?? req.method ?? 'GET'
    if (method === 'CONNECT') {
      sendJsonError(req, res, 405, 'method_not_allowed', 'CONNECT cannot be forwarded')
      return
    }
    const path = forwardedPath(input, input.rewrite ?? host.rewrite, host.callbacks)
    if (path === 'invalid' || path === 'rewrite_failed') {
      refusePath(req, res, path)
      return
    }

    if (input.body !== undefined) {
      if (input.body.length > host.maxBodyBytes)
        this.answerBodyError(new BodyTooLargeError(host.maxBodyBytes))
      else {
        this.body = input.body
        this.begin(method, path)
      }
      return
    }
    const plan = bodyPlan(input, host.maxReplayBodyBytes, host.maxBodyBytes)
    if (plan.kind === 'none') {
      this.begin(method, path)
    } else if (plan.kind === 'too_large') {
      this.answerBodyError(new BodyTooLargeError(host.maxBodyBytes))
    } else if (plan.kind === 'consumed') {
      sendJsonError(
        req,
        res,
        500,
        'body_already_consumed',
        'a body parser consumed the request body; pass its original bytes as `body` to forward()',
      )
    } else {
      if (host.uploadTimeoutMs !== Number.POSITIVE_INFINITY) {
        this.deadline = new UploadDeadline(req, host.uploadTimeoutMs, (error) => this.uploadExpired(error))
      }
      readRequestBody(req, plan.bufferBytes, host.maxBodyBytes).then(
        (body) => {
          if (this.closed || res.headersSent) {
            if (body instanceof StreamedBody) body.destroy()
            return
          }
          this.body = body
          this.replayable = !(body instanceof StreamedBody)
          try {
            this.begin(method, path)
          } catch (err) {
            this.failedUnexpectedly(err)
          }
        },
        (err: unknown) => {
          if (err instanceof BodyTooLargeError) this.answerBodyError(err)
        },
      )
    }
  }

  private answerBodyError(error: BodyTooLargeError | UploadTimeoutError): void {
    if (!this.closed) refuseBody(this.req, this.res, error)
  }

  private uploadExpired(error: UploadTimeoutError): void {
    if (this.closed) return
    if (this.body instanceof StreamedBody) this.body.destroy(error)
    // A response already under way is cut by the body's error; otherwise the client hears why,
    // and a lease taken or waited for is given back.
    if (this.res.headersSent) return
    this.answerBodyError(error)
    this.closed = true
    this.dispatch?.cancel()
  }

  private begin(method: string, path: string): void {
    if (this.closed) return
    const { req, res, input, host } = this
    let body = this.body
    if (body instanceof Buffer) {
      const wantsModel = input.readModel === true && input.model === undefined
      const wantsPrompt = input.readPrompt !== undefined && input.prompt === undefined
      if ((wantsModel || wantsPrompt) && isJsonRequest(req)) {
        try {
          const fields = topLevelFields(body)
          if (wantsModel) input.model = fields.model
          if (wantsPrompt) input.prompt = promptOf(input.readPrompt!, body, fields)
        } catch (err) {
          if (!(err instanceof InvalidJsonBodyError)) throw err
          sendJsonError(req, res, err.status, err.code, err.message)
          return
        }
      }
      if (this.observer?.requestBody !== undefined) {
        try {
          body = this.observer.requestBody(body) ?? body
          this.body = body
        } catch (err) {
          this.unexpected(err)
        }
      }
    }
    let headers: string[]
    try {
      headers = upstreamRequestHeaders(req.rawHeaders, forwardedInfo(input), body instanceof StreamedBody)
    } catch (err) {
      if (!(err instanceof InvalidHeaderValueError)) throw err
      sendJsonError(req, res, 400, 'invalid_header_value', err.message)
      return
    }
    host.budget?.recordRequest()
    this.dispatch = new LeaseDispatch(this, host.balancer, host.pools, input, { path, method, headers, body })
    this.dispatch.next()
  }

  acquireFailed(err: unknown): void {
    if (this.closed) return
    if (!(err instanceof BalancerError)) {
      this.unexpected(err)
      sendJsonError(this.req, this.res, 500, 'internal_error', 'the gateway failed to pick a backend')
      return
    }
    if (this.dispatch!.attempts === 0 || this.summary === undefined || !this.summary.any) {
      sendJsonError(this.req, this.res, err.status, err.code, err.message, err.retryAfterMs, err.details)
      return
    }
    this.failures().noteRetryAfter(err.retryAfterMs)
    this.failures().answer(this.req, this.res)
  }

  claimRetry(): boolean {
    const host = this.host
    if (this.closed || !this.replayable || this.dispatch!.attempts >= host.maxAttempts) return false
    return host.budget === null || host.budget.tryRetry()
  }

  retryAfterStatus(status: number, retryAfterMs: number | undefined): void {
    if (this.policy.retryStatuses.get(status) === 'bad_gateway') this.failures().sawBadGateway = true
    else this.failures().sawOverload = true
    this.failures().noteRetryAfter(retryAfterMs)
    this.dispatch!.retry()
  }

  attemptFailed(error: Error): void {
    if (this.closed) return
    if (error instanceof BodyTooLargeError || error instanceof UploadTimeoutError) {
      this.answerBodyError(error)
      return
    }
    const code = errorCode(error)
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
    const policy = this.policy
    if (code !== undefined && policy.timeoutCodes.has(code)) this.failures().timedOut = true
    else this.failures().sawBadGateway = true
    const retryable = code !== undefined && (policy.timeoutCodes.has(code) || policy.retryCodes.has(code))
    if (retryable && this.claimRetry()) this.dispatch!.retry()
    else this.failures().answer(this.req, this.res)
  }

  retryOnFreshConnection(failed: Attempt): boolean {
    return !this.closed && this.replayable && this.dispatch!.retryFresh(failed)
  }

  commit(status: number, headers: IncomingHttpHeaders, backendId: string): boolean {
    try {
      const named = this.host.backendHeader
      if (named !== undefined) this.res.setHeader(named, backendId)
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

  streamFailed(canAppendSseEvent: boolean): void {
    if (this.closed) return
    if (canAppendSseEvent) this.res.end(sseErrorEvent('the backend failed while streaming the response'))
    else this.res.destroy()
  }

  expectsStreamEnd(): boolean {
    const body = this.body
    if (!(body instanceof Buffer) || !isJsonRequest(this.req)) return false
    try {
      return topLevelFields(body).stream
    } catch {
      return false
    }
  }

  private failures(): FailureSummary {
    this.summary ??= new FailureSummary()
    return this.summary
  }

  unexpected(error: unknown): void {
    this.host.callbacks.notify('onUnexpectedError', this.host.onUnexpectedError, error)
  }

  private onResponseClose(): void {
    this.deadline?.clear()
    if (!this.res.writableFinished) {
      this.closed = true
      this.dispatch?.cancel()
      if (this.body instanceof StreamedBody) this.body.destroy()
    }
    // While shutting down, a keep-alive connection left idle by this response would hold the
    // server's close() open until the client's idle timeout; in-flight responses end it instead.
    if (this.host.shuttingDown) {
      const socket = this.req.socket
      if (!socket.destroyed) socket.end()
    }
    this.resolve()
  }
}
