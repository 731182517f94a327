import type { BackendsHandle, ForwardOptions, Gateway, LimitEngine, LimitStore } from '@tollgate/core'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { type ForwardHandler, forwardHandler } from './forward-handler.js'

/** `app.tollgate`: what the plugin exposes to the application. */
export class Tollgate {
  readonly #engine: LimitEngine<FastifyRequest>
  readonly #gateway: Gateway<FastifyRequest> | undefined

  constructor(engine: LimitEngine<FastifyRequest>, gateway: Gateway<FastifyRequest> | undefined) {
    this.#engine = engine
    this.#gateway = gateway
  }

  /** The counter store in use (memory, Redis with insurance, or the one you passed). */
  get store(): LimitStore {
    return this.#engine.store
  }

  /** Add, remove, drain backends at runtime and read their state. */
  get backends(): BackendsHandle {
    return this.#requireGateway('backends').backends
  }

  /**
   * A route handler that forwards the request (its own path and query, unless
   * `rewrite` says otherwise) to one backend chosen by the strategy.
   */
  forward(options?: ForwardOptions<FastifyRequest>): ForwardHandler {
    return forwardHandler(this.#requireGateway('forward()'), options)
  }

  /**
   * A `GET /v1/models` handler answered from the registry when backends declare
   * their models; without declared models it forwards to a backend instead.
   */
  listModels(): (request: FastifyRequest, reply: FastifyReply) => Promise<unknown> {
    const gateway = this.#requireGateway('listModels()')
    const forward = forwardHandler(gateway, undefined)
    return async (request, reply) => {
      if (!gateway.routesByModel) return forward(request, reply)
      return gateway.modelList()
    }
  }

  #requireGateway(what: string): Gateway<FastifyRequest> {
    if (this.#gateway === undefined) {
      throw new TypeError(
        `tollgate: ${what} needs backends: register the plugin with { backends: [{ url: 'http://…' }] }`,
      )
    }
    return this.#gateway
  }
}
