/**
 * Which failures another backend may take over, declared as data in one place: the relay and the
 * exchange only ask this table. A retry also needs a replayable body, an attempt left
 * (`maxAttempts`) and the retry budget's consent.
 */
export interface FailoverPolicy {
  /**
   * Backend statuses that mean "this backend refused the work": retried elsewhere when a retry is
   * left, their body drained unsent. `bad_gateway` ones count toward a final 502, `overloaded`
   * ones toward a final 503 with the shortest `Retry-After` seen.
   */
  readonly retryStatuses: ReadonlyMap<number, 'bad_gateway' | 'overloaded'>
  /** Statuses whose `Retry-After` the balancer is told about (a cool-down for that backend). */
  readonly retryAfterStatuses: ReadonlySet<number>
  /** Connection failures where the backend cannot have started on the request. */
  readonly retryCodes: ReadonlySet<string>
  /**
   * A backend that did not send its response headers in time: undici has closed that connection,
   * which cancels its work, so another backend may take the request. Ends as 504 when nothing else
   * answered.
   */
  readonly timeoutCodes: ReadonlySet<string>
  /**
   * Failures that, on a kept-alive connection that had already carried a response and before any
   * byte of this one arrived, mean the backend had closed that connection and never saw the
   * request (llama-server closes every connection after a streamed response while announcing
   * `Keep-Alive`). Retried once on the same backend over a fresh connection, at no cost to its
   * health, load or the request's attempts.
   */
  readonly staleConnectionCodes: ReadonlySet<string>
}

export const DEFAULT_FAILOVER_POLICY: FailoverPolicy = {
  retryStatuses: new Map([
    [502, 'bad_gateway'],
    [503, 'overloaded'],
    [429, 'overloaded'],
  ]),
  retryAfterStatuses: new Set([429, 503]),
  retryCodes: new Set([
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
  ]),
  timeoutCodes: new Set(['UND_ERR_HEADERS_TIMEOUT']),
  staleConnectionCodes: new Set(['UND_ERR_SOCKET']),
}

/** Whether a finished response counts as a success of its backend (for health and load). */
export function isBackendSuccess(status: number): boolean {
  return status < 500 && status !== 429
}

/** The `code` of a Node or undici error, if it has one. */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

/**
 * Whether `error` is a kept-alive connection found closed: one of the policy's stale-connection
 * codes on a socket that had already read a response (undici's `SocketError` carries the socket's
 * byte counts). A fresh connection that fails reads 0 bytes and is a real failure of the backend.
 */
export function isStaleConnection(policy: FailoverPolicy, error: Error): boolean {
  const code = errorCode(error)
  if (code === undefined || !policy.staleConnectionCodes.has(code)) return false
  const bytesRead = (error as { socket?: { bytesRead?: unknown } }).socket?.bytesRead
  return typeof bytesRead === 'number' && bytesRead > 0
}
