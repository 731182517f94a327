import { createRequire } from 'node:module'
import type { Span, Tracer } from '@opentelemetry/api'
import type { AttemptOutcome, BackendTarget } from '../balance/types.js'
import type { BackendChange, ForwardStartInfo, GatewayEvents, RequestEvents } from './events.js'

/** `tracing` option: OpenTelemetry spans per forwarded request and per attempt. */
export interface TracingOptions {
  /** Default: `trace.getTracer('@tollgate/core')` from the globally registered provider (no-op without an SDK). */
  tracer?: Tracer
}

type OtelApi = typeof import('@opentelemetry/api')
let otel: OtelApi | undefined
function loadOtel(): OtelApi {
  otel ??= createRequire(import.meta.url)('@opentelemetry/api') as OtelApi
  return otel
}

/** The GenAI operation a path names (`gen_ai.operation.name`); undefined for other paths. */
export function operationName(url: string | undefined): string | undefined {
  if (url === undefined) return undefined
  const q = url.indexOf('?')
  const path = q === -1 ? url : url.slice(0, q)
  if (path.endsWith('/chat/completions')) return 'chat'
  if (path.endsWith('/completions')) return 'text_completion'
  if (path.endsWith('/embeddings')) return 'embeddings'
  if (path.endsWith('/responses')) return 'chat'
  return undefined
}

/**
 * Tracing as one consumer of `GatewayEvents`: a CLIENT span per forwarded request named as the
 * GenAI conventions say (`{gen_ai.operation.name} {gen_ai.request.model}`), and a child span per
 * attempt on a backend. Without a registered SDK every span is a no-op.
 */
export class RequestTracing implements GatewayEvents {
  readonly #tracer: Tracer
  readonly #api: OtelApi

  constructor(options: TracingOptions = {}) {
    this.#api = loadOtel()
    this.#tracer = options.tracer ?? this.#api.trace.getTracer('@tollgate/core')
  }

  forwardStart(info: ForwardStartInfo): RequestEvents {
    const operation = operationName(info.req.url)
    const span = this.#tracer.startSpan(operation ?? 'forward', {
      kind: this.#api.SpanKind.CLIENT,
      attributes: {
        'gen_ai.operation.name': operation ?? 'forward',
        'http.request.method': info.req.method ?? 'GET',
      },
    })
    return new RequestSpan(this.#api, this.#tracer, span, info, operation)
  }

  limitDecision(): void {}

  backendChange(_backend: BackendTarget, _change: BackendChange): void {}
}

class RequestSpan implements RequestEvents {
  #attempt: Span | undefined

  constructor(
    private readonly api: OtelApi,
    private readonly tracer: Tracer,
    private readonly span: Span,
    private readonly info: ForwardStartInfo,
    private readonly operation: string | undefined,
  ) {}

  queued(): void {
    this.span.addEvent('tollgate.queued')
  }

  dequeued(): void {
    this.span.addEvent('tollgate.dequeued')
  }

  attemptStart(backend: BackendTarget, attempt: number): void {
    const api = this.api
    const parent = api.trace.setSpan(api.context.active(), this.span)
    const url = backend.url
    this.#attempt = this.tracer.startSpan(
      `attempt ${backend.id}`,
      {
        kind: api.SpanKind.CLIENT,
        attributes: {
          'server.address': url.hostname,
          'server.port': Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
          'tollgate.backend.id': backend.id,
          'tollgate.attempt': attempt,
        },
      },
      parent,
    )
  }

  attemptEnd(_backend: BackendTarget, outcome: AttemptOutcome): void {
    const span = this.#attempt
    if (span === undefined) return
    this.#attempt = undefined
    if (outcome.status !== undefined) span.setAttribute('http.response.status_code', outcome.status)
    if (outcome.cancelled) span.setAttribute('tollgate.cancelled', true)
    else if (!outcome.ok) {
      span.setAttribute('error.type', outcome.error?.name ?? String(outcome.status ?? 'error'))
      span.setStatus({ code: this.api.SpanStatusCode.ERROR })
    }
    span.end()
  }

  responseStart(_status: number, stream: boolean): void {
    if (stream) this.span.setAttribute('gen_ai.request.stream', true)
  }

  responseData(): void {}

  tokens(input: number | undefined, output: number | undefined): void {
    if (input !== undefined) this.span.setAttribute('gen_ai.usage.input_tokens', input)
    if (output !== undefined) this.span.setAttribute('gen_ai.usage.output_tokens', output)
  }

  end(status: number, complete: boolean): void {
    const span = this.span
    const model = this.info.model
    if (model !== undefined) {
      span.setAttribute('gen_ai.request.model', model)
      span.updateName(`${this.operation ?? 'forward'} ${model}`)
    }
    span.setAttribute('http.response.status_code', status)
    if (status >= 500 || !complete) {
      span.setAttribute('error.type', complete ? String(status) : 'response_cut')
      span.setStatus({ code: this.api.SpanStatusCode.ERROR })
    }
    span.end()
  }
}
