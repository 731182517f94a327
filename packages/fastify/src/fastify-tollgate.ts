import type { BackendsHandle, ForwardOptions, LimitStore } from '@tollgate/core'
import type { TollgateCore } from '@tollgate/core/internal'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { type ForwardHandler, forwardHandler } from './forward-handler.js'

/** `app.tollgate`: what the plugin exposes to the application. */
export class FastifyTollgate {
  readonly #core: TollgateCore<FastifyRequest>

  constructor(core: TollgateCore<FastifyRequest>) {
    this.#core = core
  }

  /** The counter store in use (memory, Redis with insurance, or the one you passed). */
  get store(): LimitStore {
    return this.#core.store
  }

  /** Add, remove, drain backends at runtime and read their state. */
  get backends(): BackendsHandle {
    return this.#core.backends('app.tollgate.backends')
  }

  /**
   * A route handler that forwards the request (its own path and query, unless
   * `rewrite` says otherwise) to one backend chosen by the strategy.
   */
  forward(options?: ForwardOptions<FastifyRequest>): ForwardHandler {
    return forwardHandler(this.#core.gateway('app.tollgate.forward()'), options)
  }

  /**
   * A handler answering with the Prometheus exposition text of this gateway's metrics
   * (`app.get('/metrics', app.tollgate.metrics())`); needs the `metrics` option.
   */
  metrics(): (request: FastifyRequest, reply: FastifyReply) => Promise<string> {
    const metrics = this.#core.metrics('app.tollgate.metrics()')
    return async (_request, reply) => {
      const { contentType, body } = await metrics.exposition()
      reply.type(contentType)
      return body
    }
  }

  /**
   * A `GET /v1/models` handler answered from the registry when backends declare
   * their models; without declared models it forwards to a backend instead.
   */
  listModels(): (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> {
    const core = this.#core
    const forward = forwardHandler(core.gateway('app.tollgate.listModels()'), undefined)
    return async (request, reply) => core.modelList() ?? forward(request, reply)
  }
}

/** @deprecated the old name of `FastifyTollgate`, the type of `app.tollgate`. */
export type Tollgate = FastifyTollgate
