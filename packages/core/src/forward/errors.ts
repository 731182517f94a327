import type { IncomingMessage, ServerResponse } from 'node:http'

/**
 * The client went away. Used as the abort reason for the upstream request, so the attempt's
 * error handler can tell a cancellation (not the backend's fault) from a backend failure.
 */
export class ClientClosedError extends Error {
  override readonly name = 'ClientClosedError'
  readonly code = 'client_closed'
  constructor() {
    super('the client closed the connection')
  }
}

/** One instance is enough: aborting must not cost a stack capture per cancelled request. */
export const CLIENT_CLOSED = new ClientClosedError()

/** A request body went past `maxBodyBytes`; answered with 413. */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError'
  readonly code = 'body_too_large'
  constructor(readonly limitBytes: number) {
    super(`request body is larger than ${limitBytes} bytes`)
  }
}

/** OpenAI-style `type`: clients and SDKs branch on it. */
function errorType(status: number): string {
  return status < 500 ? 'invalid_request_error' : 'server_error'
}

/** The JSON error body every gateway-made answer uses: `{ error: { message, type, code, ...details } }`. */
export function errorBody(
  status: number,
  code: string,
  message: string,
  details?: Record<string, unknown>,
): string {
  return JSON.stringify({ error: { ...details, message, type: errorType(status), code } })
}

/**
 * Answers with a JSON error, or, when the response has already started, tears the connection down:
 * a half-sent response must never be completed with something that looks like success.
 */
export function sendJsonError(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  code: string,
  message: string,
  retryAfterMs?: number,
  details?: Record<string, unknown>,
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy()
    return
  }
  const body = errorBody(status, code, message, details)
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  }
  if (retryAfterMs !== undefined) headers['retry-after'] = Math.max(1, Math.ceil(retryAfterMs / 1000))
  // An unread request body would otherwise be drained before the connection can be reused.
  if (!req.complete) headers.connection = 'close'
  res.writeHead(status, headers)
  res.end(body)
}

/** The SSE event that ends a token stream whose backend failed, so the client does not take it as done. */
export function sseErrorEvent(message: string): string {
  return `event: error\ndata: ${errorBody(502, 'backend_stream_failed', message)}\n\n`
}

/** The client did not finish sending its body within `uploadTimeoutMs`; answered with 408. */
export class UploadTimeoutError extends Error {
  override readonly name = 'UploadTimeoutError'
  readonly code = 'upload_timeout'
  constructor(readonly timeoutMs: number) {
    super(`the request body did not arrive within ${timeoutMs} ms`)
  }
}
