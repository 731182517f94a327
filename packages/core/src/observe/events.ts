import type { AttemptOutcome, BackendTarget } from '../balance/types.js'
import type { LimitDecision } from '../limits/decision.js'
import type { TokenReservation } from '../limits/tokens/token-budget.js'

/**
 * What one forwarded request reports while it runs, from the gateway (start, end), the lease
 * dispatch (queue wait, attempts) and the relay (response start, chunks). Created by
 * `GatewayEvents.forwardStart`; a request gets none when nothing observes, and then every call
 * site costs one property check.
 */
export interface RequestEvents {
  /** Every candidate backend was full: the request waits in the balancer's queue. */
  queued(): void
  /** The wait ended, with a lease or without one. */
  dequeued(): void
  /** An attempt is dispatched to `backend`; `attempt` counts from 1. */
  attemptStart(backend: BackendTarget, attempt: number): void
  /** That attempt's outcome, exactly as the balancer's lease gets it. */
  attemptEnd(backend: BackendTarget, outcome: AttemptOutcome): void
  /** The backend's response is being passed on (the attempt that answers the client); `stream`: an event stream. */
  responseStart(status: number, stream: boolean): void
  /** One chunk of the response body, as it is passed on. */
  responseData(chunk: Buffer): void
  /**
   * Token counts from the response's `usage`, reported before `end` on routes with a token
   * budget (whose usage observer reads them); either may be unknown. Time per output token then
   * uses the real count instead of chunks.
   */
  tokens(input: number | undefined, output: number | undefined): void
  /** The client's response is over: its status, and whether it was sent whole. */
  end(status: number, complete: boolean): void
}

/** What is known of a forwarded request when it starts; `model` is filled in once the body is read. */
export interface ForwardStartInfo {
  /** The client's request: its method and URL. */
  readonly req: { readonly method?: string; readonly url?: string }
  /** Read it when the request ends: it is set once the body has been read. */
  readonly model?: string
}

/** Why a backend's availability changed. */
export type BackendChange =
  | { kind: 'ejected'; untilMs: number; consecutiveFailures: number }
  | { kind: 'restored' }
  | { kind: 'unhealthy' }
  | { kind: 'healthy' }

/**
 * The one listener interface the forwarder, the balancer and the limits report to. Metrics,
 * tracing and logs are consumers of it (`observe/`); without any, the gateway holds none and the
 * request path pays nothing.
 */
export interface GatewayEvents {
  /** A request is about to be forwarded; the listener for the rest of its life, or undefined. */
  forwardStart(info: ForwardStartInfo): RequestEvents | undefined
  /** One limit check of route `route` (its scope) decided. */
  limitDecision(route: string, decision: LimitDecision): void
  /** A token budget of route `route` had no room for a request, which got a 429. */
  tokensRejected?(route: string, reservation: TokenReservation): void
  /** A backend left or came back into rotation. */
  backendChange(backend: BackendTarget, change: BackendChange): void
}

/** Fans one event out to several consumers; with one consumer, that consumer itself is used. */
export function combineEvents(consumers: readonly GatewayEvents[]): GatewayEvents | undefined {
  if (consumers.length === 0) return undefined
  if (consumers.length === 1) return consumers[0]
  return {
    forwardStart(info) {
      const listeners: RequestEvents[] = []
      for (const c of consumers) {
        const l = c.forwardStart(info)
        if (l !== undefined) listeners.push(l)
      }
      return listeners.length <= 1 ? listeners[0] : new RequestFanOut(listeners)
    },
    limitDecision(route, decision) {
      for (const c of consumers) c.limitDecision(route, decision)
    },
    tokensRejected(route, reservation) {
      for (const c of consumers) c.tokensRejected?.(route, reservation)
    },
    backendChange(backend, change) {
      for (const c of consumers) c.backendChange(backend, change)
    },
  }
}

class RequestFanOut implements RequestEvents {
  constructor(private readonly listeners: readonly RequestEvents[]) {}
  queued(): void {
    for (const l of this.listeners) l.queued()
  }
  dequeued(): void {
    for (const l of this.listeners) l.dequeued()
  }
  attemptStart(backend: BackendTarget, attempt: number): void {
    for (const l of this.listeners) l.attemptStart(backend, attempt)
  }
  attemptEnd(backend: BackendTarget, outcome: AttemptOutcome): void {
    for (const l of this.listeners) l.attemptEnd(backend, outcome)
  }
  responseStart(status: number, stream: boolean): void {
    for (const l of this.listeners) l.responseStart(status, stream)
  }
  responseData(chunk: Buffer): void {
    for (const l of this.listeners) l.responseData(chunk)
  }
  tokens(input: number | undefined, output: number | undefined): void {
    for (const l of this.listeners) l.tokens(input, output)
  }
  end(status: number, complete: boolean): void {
    for (const l of this.listeners) l.end(status, complete)
  }
}
