import type { Dispatcher } from 'undici'
import { headersFor } from '../balance/backend-connection.js'
import type { BackendLease, BackendTarget, Balancer, PickContext } from '../balance/types.js'
import { CLIENT_CLOSED } from './errors.js'
import { renameModel } from './model-rename.js'
import { Attempt, type RelayOwner } from './relay.js'
import { backendPath } from './request-target.js'
import type { UpstreamPools } from './upstream-pools.js'

const NONE_TRIED: ReadonlySet<string> = new Set()

function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown }).then === 'function'
}

/** What one dispatch sends: the same for every attempt of a request. */
export interface UpstreamRequest {
  path: string
  method: string
  headers: string[]
  body: Dispatcher.DispatchOptions['body']
}

/** What the dispatcher reports back to the request it works for. */
export interface DispatchOwner extends RelayOwner {
  /** The balancer refused or failed; `err` is what it threw or rejected with. */
  acquireFailed(err: unknown): void
}

/**
 * Lease-and-dispatch for one request: takes a backend from the balancer (at once, or after the
 * balancer's queue), then dispatches to that backend's pool. A retry takes another lease,
 * excluding backends already tried. The lease is only taken when the request is ready to go out.
 */
export class LeaseDispatch {
  attempts = 0
  private tried: Set<string> | undefined
  private current: Attempt | undefined
  private abortController: AbortController | undefined

  constructor(
    private readonly owner: DispatchOwner,
    private readonly balancer: Balancer,
    private readonly pools: UpstreamPools,
    private readonly context: PickContext,
    private readonly request: UpstreamRequest,
  ) {}

  /** Created only when the balancer has to queue the request: most requests never need it. */
  private readonly waitSignal = (): AbortSignal => {
    this.abortController ??= new AbortController()
    return this.abortController.signal
  }

  next(): void {
    if (this.owner.closed) return
    let acquired: BackendLease | PromiseLike<BackendLease>
    try {
      acquired = this.balancer.acquire(this.context, this.tried ?? NONE_TRIED, this.waitSignal)
    } catch (err) {
      this.owner.acquireFailed(err)
      return
    }
    if (isPromiseLike(acquired)) {
      const events = this.owner.events
      events?.queued()
      acquired.then(
        (lease) => {
          events?.dequeued()
          this.dispatchTo(lease)
        },
        (err: unknown) => {
          events?.dequeued()
          this.owner.acquireFailed(err)
        },
      )
    } else {
      this.dispatchTo(acquired)
    }
  }

  /** Another backend for the same request, excluding the one just tried. */
  retry(): void {
    const current = this.current
    if (current !== undefined) {
      this.tried ??= new Set()
      this.tried.add(current.lease.backend.id)
    }
    this.next()
  }

  /**
   * The same backend and lease again, over a connection of its own: `failed` found its pooled
   * connection closed by the backend before the request reached it. Not counted as an attempt.
   */
  retryFresh(failed: Attempt): boolean {
    if (this.owner.closed || failed !== this.current) return false
    const attempt = new Attempt(this.owner, failed.lease, true)
    this.current = attempt
    const backend = failed.lease.backend
    this.pools.noteStaleConnection(backend)
    try {
      this.pools.dispatchFresh(backend, this.options(backend), attempt)
    } catch (err) {
      attempt.onResponseError(undefined, err as Error)
    }
    return true
  }

  /** The client went away: stop waiting for a lease, abort the attempt in flight. */
  cancel(): void {
    this.current?.cancel()
    this.abortController?.abort(CLIENT_CLOSED)
  }

  private dispatchTo(lease: BackendLease): void {
    const owner = this.owner
    if (owner.closed) {
      // Acquired after the client left (a balancer that ignores the signal): give it back unused.
      try {
        lease.finish({ ok: true, latencyMs: 0, cancelled: true })
      } catch (err) {
        owner.unexpected(err)
      }
      return
    }
    this.attempts++
    const attempt = new Attempt(owner, lease)
    this.current = attempt
    const backend = lease.backend
    owner.events?.attemptStart(backend, this.attempts)
    let pool: Dispatcher
    try {
      pool = this.pools.poolFor(backend)
    } catch (err) {
      attempt.onResponseError(undefined, err as Error)
      return
    }
    pool.dispatch(this.options(backend), attempt)
  }

  private options(backend: BackendTarget): Dispatcher.DispatchOptions {
    const request = this.request
    let headers = request.headers
    let body = request.body
    const connection = backend.connection
    if (connection !== undefined) {
      headers = headersFor(connection, headers)
      const model = this.context.model
      const name = model === undefined ? undefined : connection.modelNames?.get(model)
      if (name !== undefined && body instanceof Buffer) body = renameModel(body, name)
    }
    return {
      path: backendPath(backend.url.pathname, request.path),
      method: request.method,
      headers,
      body,
      // Its socket would go back to the pool already closed by the backend.
      reset: this.pools.closesAfterStreams(backend) && this.owner.expectsStreamEnd() ? true : undefined,
    }
  }
}
