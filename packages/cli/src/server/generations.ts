import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { RequestHandler } from '../gateway-app.js'

/** One built gateway app and the requests it is still answering. */
class Generation {
  inFlight = 0
  #idle: (() => void) | undefined
  readonly done = (): void => {
    if (--this.inFlight === 0) this.#idle?.()
  }

  constructor(
    readonly app: FastifyInstance,
    readonly handler: RequestHandler,
    readonly drainTimeoutMs: number,
  ) {}

  /** Resolves when no request is in flight, or after `drainTimeoutMs` at the latest. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, this.drainTimeoutMs)
      this.#idle = () => {
        clearTimeout(timer)
        resolve()
      }
    })
  }
}

/**
 * The CLI's one listening HTTP server. Every request goes to the current gateway app; a reload
 * builds a new app and makes it current, so new requests (on new and kept-alive connections
 * alike) reach the new config at once while the old app answers the requests it already has.
 * Once those are done (or after its drain time) the old app is closed, which closes its
 * backends' connection pools. The socket is never closed, so no connection is refused.
 */
export class GenerationServer {
  readonly server: Server
  #current: Generation | undefined
  #retiring = new Set<Promise<void>>()

  constructor() {
    this.server = createServer((request, response) => this.#dispatch(request, response))
  }

  #dispatch(request: IncomingMessage, response: ServerResponse): void {
    const generation = this.#current
    if (generation === undefined) {
      response.writeHead(503, { 'content-type': 'application/json' })
      response.end('{"error":{"message":"tollgate is starting","type":"unavailable"}}')
      return
    }
    generation.inFlight++
    response.once('close', generation.done)
    generation.handler(request, response)
  }

  /** Requests the current config is answering now. */
  get inFlight(): number {
    return this.#current?.inFlight ?? 0
  }

  get app(): FastifyInstance | undefined {
    return this.#current?.app
  }

  /** Makes `app` current; the previous one is closed once its requests are done. */
  swap(app: FastifyInstance, handler: RequestHandler, drainTimeoutMs: number): Promise<void> {
    const previous = this.#current
    this.#current = new Generation(app, handler, drainTimeoutMs)
    return previous === undefined ? Promise.resolve() : this.#retire(previous)
  }

  #retire(generation: Generation, waitForIdle = true): Promise<void> {
    const retired = (waitForIdle ? generation.idle() : Promise.resolve())
      .then(() => generation.app.close())
      .catch((error: unknown) =>
        generation.app.log.error({ err: error }, 'tollgate: closing the previous config failed'),
      )
      .finally(() => this.#retiring.delete(retired))
    this.#retiring.add(retired)
    return retired
  }

  /**
   * Stops taking connections and closes the current app at once: the plugin's own close lets
   * requests in flight run for its shutdownTimeoutMs and then cuts them, so the whole shutdown
   * fits in that deadline (a Kubernetes grace period is set from it). Then closes every connection.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()))
    this.server.closeIdleConnections()
    const current = this.#current
    if (current) await this.#retire(current, false)
    await Promise.all(this.#retiring)
    this.server.closeAllConnections()
    await closed
  }
}
