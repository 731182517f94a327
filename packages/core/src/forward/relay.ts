import type { IncomingHttpHeaders, ServerResponse } from 'node:http'
import type { Dispatcher } from 'undici'
import type { AttemptOutcome, BackendLease } from '../balance/types.js'
import type { RequestEvents } from '../observe/events.js'
import { BodyTooLargeError, CLIENT_CLOSED, ClientClosedError, UploadTimeoutError } from './errors.js'
import { type FailoverPolicy, isBackendSuccess, isStaleConnection } from './failover-policy.js'
import { parseRetryAfter } from './retry-after.js'
import type { ForwardObserver } from './types.js'

/** What an attempt asks of the request it belongs to (the exchange). */
export interface RelayOwner {
  readonly res: ServerResponse
  /** The client went away. */
  readonly closed: boolean
  readonly policy: FailoverPolicy
  readonly observer: ForwardObserver | undefined
  readonly events: RequestEvents | undefined
  /** Takes a retry if this request may still have one. */
  claimRetry(): boolean
  /** A backend answered with one of the policy's retry statuses and a retry was claimed. */
  retryAfterStatus(status: number, retryAfterMs: number | undefined): void
  /** Writes the backend's status and headers; false (and the client answered) when they cannot be sent. */
  commit(status: number, headers: IncomingHttpHeaders, backendId: string): boolean
  /** The attempt failed before any response byte was passed on. */
  attemptFailed(error: Error): void
  /**
   * The attempt met a kept-alive connection the backend had closed: true when the request is sent
   * again to the same backend over a fresh connection, under the same lease.
   */
  retryOnFreshConnection(failed: Attempt): boolean
  /** The response started and then failed or was cut: make that visible to the client. */
  streamFailed(canAppendSseEvent: boolean): void
  /** Whether the request asked for an OpenAI-style stream, which ends with `[DONE]` or a `finish_reason`. */
  expectsStreamEnd(): boolean
  unexpected(error: unknown): void
}

const EVENT_STREAM = /^\s*text\/event-stream/i
const DONE = Buffer.from('[DONE]')
const FINISH_REASON = Buffer.from('"finish_reason":"')
const FINISH_REASON_SPACED = Buffer.from('"finish_reason": "')

const PENDING = 0
const DISCARDING = 1
const STREAMING = 2
const DONE_PHASE = 3

/**
 * One dispatch to one backend: undici's handler for it, relaying the response to the client as
 * it arrives, and the owner of its lease, which it finishes exactly once whatever happens.
 */
export class Attempt implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | null = null
  private phase = PENDING
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
  /** The last chunks of an event stream: where its `[DONE]` or `finish_reason` would be. */
  private lastChunk: Buffer | undefined
  private chunkBefore: Buffer | undefined
  private chunkBeforeThat: Buffer | undefined

  constructor(
    private readonly owner: RelayOwner,
    readonly lease: BackendLease,
    /** Sent over a connection of its own after a stale one: a second stale failure is a real one. */
    readonly fresh = false,
  ) {}

  /** The client went away. */
  cancel(): void {
    if (this.phase === DONE_PHASE || this.phase === DISCARDING) return
    // On its way to the backend (or answering): the backend may have generated what it was asked.
    if (this.controller !== null && this.owner.observer?.abandoned !== undefined) this.observe('abandoned')
    // Before the request is on a socket there is no controller yet: onRequestStart aborts then.
    this.controller?.abort(CLIENT_CLOSED)
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller
    if (this.owner.closed) controller.abort(CLIENT_CLOSED)
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    // 1xx (`103 Early Hints`, `100 Continue`) come before the final response: not passed on.
    if (statusCode < 200) return
    this.latencyMs = performance.now() - this.startedAt
    this.status = statusCode
    const owner = this.owner
    if (owner.closed) {
      controller.abort(CLIENT_CLOSED)
      return
    }
    const policy = owner.policy
    if (policy.retryAfterStatuses.has(statusCode)) this.retryAfterMs = parseRetryAfter(headers['retry-after'])
    if (policy.retryStatuses.has(statusCode) && owner.claimRetry()) {
      // The body is left to drain so the connection can be reused; nothing of it is sent.
      this.phase = DISCARDING
      this.report(false, undefined)
      owner.retryAfterStatus(statusCode, this.retryAfterMs)
      return
    }
    if (!owner.commit(statusCode, headers, this.lease.backend.id)) {
      this.phase = DONE_PHASE
      this.report(false, undefined)
      controller.abort(CLIENT_CLOSED)
      return
    }
    this.phase = STREAMING
    if (owner.observer?.responseStart !== undefined) this.observe('responseStart', statusCode, headers)
    const contentType = headers['content-type']
    if (typeof contentType === 'string' && EVENT_STREAM.test(contentType)) {
      this.sse = true
      // The first token may be seconds away; the client should see the stream open now.
      owner.res.flushHeaders()
    }
    owner.events?.responseStart(statusCode, this.sse)
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.phase !== STREAMING || this.owner.closed) return
    const res = this.owner.res
    if (this.owner.observer?.responseData !== undefined) chunk = this.observeData(chunk)
    if (this.sse) this.track(chunk)
    this.owner.events?.responseData(chunk)
    if (chunk.length === 0) return
    if (!res.write(chunk)) {
      controller.pause()
      this.onDrain ??= () => this.controller?.resume()
      res.once('drain', this.onDrain)
    }
  }

  onResponseEnd(): void {
    if (this.phase !== STREAMING) return
    this.phase = DONE_PHASE
    const owner = this.owner
    // A close-delimited stream ends the same way whether the backend finished or was cut: only
    // its content tells them apart.
    if (this.sse && !this.atEventBoundary()) {
      this.report(false, undefined)
      this.ended(false)
      owner.streamFailed(false)
      return
    }
    if (this.sse && !this.saidFinished() && owner.expectsStreamEnd()) {
      this.report(false, undefined)
      this.ended(false)
      owner.streamFailed(true)
      return
    }
    owner.res.end()
    this.report(isBackendSuccess(this.status), undefined)
    this.ended(true)
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    const phase = this.phase
    if (phase === DONE_PHASE || phase === DISCARDING) return
    this.phase = DONE_PHASE
    if (phase === PENDING) this.latencyMs = performance.now() - this.startedAt
    if (phase === STREAMING) this.ended(false)
    if (error === CLIENT_CLOSED || error instanceof ClientClosedError) {
      // A cancellation says nothing about the backend's health or speed.
      this.report(phase === PENDING || isBackendSuccess(this.status), undefined, true)
      return
    }
    if (error instanceof BodyTooLargeError || error instanceof UploadTimeoutError) {
      // The client's fault, not the backend's.
      this.report(true, undefined)
      if (phase === STREAMING) this.owner.streamFailed(false)
      else this.owner.attemptFailed(error)
      return
    }
    if (
      phase === PENDING &&
      !this.fresh &&
      isStaleConnection(this.owner.policy, error) &&
      this.owner.retryOnFreshConnection(this)
    ) {
      // Not the backend's failure: the lease, unreported, carries over to the fresh attempt.
      this.reported = true
      return
    }
    this.report(false, error)
    if (phase === STREAMING) this.owner.streamFailed(this.sse && this.atEventBoundary())
    else this.owner.attemptFailed(error)
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
      this.owner.events?.attemptEnd(this.lease.backend, outcome)
    } catch (err) {
      this.owner.unexpected(err)
    }
  }

  private ended(complete: boolean): void {
    if (this.owner.observer?.responseEnd !== undefined) this.observe('responseEnd', complete)
  }

  private observe<K extends 'responseStart' | 'responseEnd' | 'abandoned'>(
    method: K,
    ...args: Parameters<NonNullable<ForwardObserver[K]>>
  ): void {
    try {
      ;(this.owner.observer![method] as (...a: typeof args) => void)(...args)
    } catch (err) {
      this.owner.unexpected(err)
    }
  }

  /** The chunk to pass on: the observer's replacement when it returns one. */
  private observeData(chunk: Buffer): Buffer {
    try {
      return this.owner.observer!.responseData!(chunk) ?? chunk
    } catch (err) {
      this.owner.unexpected(err)
      return chunk
    }
  }

  private track(chunk: Buffer): void {
    const length = chunk.length
    for (let i = length > 4 ? length - 4 : 0; i < length; i++)
      this.tail = ((this.tail << 8) | chunk[i]!) >>> 0
    this.bytesWritten += length
    this.chunkBeforeThat = this.chunkBefore
    this.chunkBefore = this.lastChunk
    this.lastChunk = chunk
  }

  /**
   * The stream's last events say it finished: `[DONE]`, or a `finish_reason` (possibly followed
   * by a usage chunk). Looked for only at the end, so a long stream pays nothing per chunk.
   */
  private saidFinished(): boolean {
    for (const chunk of [this.lastChunk, this.chunkBefore, this.chunkBeforeThat]) {
      if (chunk === undefined) continue
      if (chunk.includes(DONE) || chunk.includes(FINISH_REASON) || chunk.includes(FINISH_REASON_SPACED))
        return true
    }
    return false
  }

  /** The stream ended between two events, so an appended error event cannot merge into a half-sent one. */
  private atEventBoundary(): boolean {
    if (this.bytesWritten === 0) return true
    const lastTwo = this.tail & 0xffff
    return lastTwo === 0x0a0a || lastTwo === 0x0d0d || this.tail === 0x0d0a0d0a
  }
}
