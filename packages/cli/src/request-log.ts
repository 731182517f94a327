import { type FastifyReply, type FastifyRequest, LogController } from 'fastify'

/**
 * Fastify's per-request lines without the two that every request writes ("incoming request",
 * "request completed"): the access log (`accessLog: true`) is the one line per request an operator
 * reads. Errors are still logged. Used unless the log level is debug or trace.
 */
export class ErrorsOnlyRequestLog extends LogController {
  override incomingRequest(): void {}

  override requestCompleted(
    error: Error | null | undefined,
    request: FastifyRequest,
    reply: FastifyReply,
    metadata?: Record<string, unknown>,
  ): void {
    if (error) super.requestCompleted(error, request, reply, metadata)
  }
}
