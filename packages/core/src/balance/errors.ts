/**
 * Why no backend could take a request. `status` is what the client gets: 400 for a malformed
 * deadline header, 404 for a model nobody serves, 503 when every candidate is ejected, draining
 * or full, or the request was shed to make room.
 */
export class BalancerError extends Error {
  override readonly name = 'BalancerError'
  constructor(
    message: string,
    readonly status: 400 | 404 | 503,
    readonly code:
      | 'unknown_model'
      | 'no_backend_available'
      | 'queue_full'
      | 'queue_timeout'
      | 'tenant_queue_full'
      | 'shed'
      | 'invalid_deadline',
    readonly retryAfterMs?: number,
    /** Extra fields for the JSON error body, e.g. the models that do exist. */
    readonly details?: Record<string, unknown>,
  ) {
    super(message)
  }
}
