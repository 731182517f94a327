import type { LimitEngine, LimitStore } from '@tollgate/core'
import type { FastifyRequest } from 'fastify'

/** `app.tollgate`: what the plugin exposes to the application. */
export class Tollgate {
  readonly #engine: LimitEngine<FastifyRequest>

  constructor(engine: LimitEngine<FastifyRequest>) {
    this.#engine = engine
  }

  /** The counter store in use (memory, Redis with insurance, or the one you passed). */
  get store(): LimitStore {
    return this.#engine.store
  }
}
