import type { Client, Dispatcher, Pool } from 'undici'
import type { BackendTarget } from '../balance/types.js'
import { undici } from '../undici-loader.js'
import { checkNumber, fail } from '../validation.js'

export interface UpstreamPoolOptions {
  /** TCP (and TLS) connect timeout. Default 5 s: a backend that cannot accept a connection that fast is down. */
  connectTimeoutMs?: number
  /**
   * Time from sending the request to the backend's response headers. Default 300 s: a
   * non-streaming completion only sends headers once the whole answer is generated, which for a
   * long answer on a busy GPU takes minutes. Lower it for routes that always stream. 0 disables.
   */
  firstByteTimeoutMs?: number
  /**
   * Longest silence between two body chunks. Default 120 s: far above the gap between tokens of
   * even a slow stream, short enough to free a connection to a hung backend. 0 disables.
   */
  idleTimeoutMs?: number
  /**
   * How long an unused keep-alive connection stays open. Default 4 s, under the 5 s idle timeout
   * of Node and uvicorn servers, so the gateway does not reuse a socket the backend is closing.
   * A `Keep-Alive: timeout=…` hint from the backend overrides it.
   */
  keepAliveTimeoutMs?: number
  /** Most connections per backend; unlimited by default (the balancer's `maxConcurrency` is the limit). */
  connectionsPerBackend?: number | null
}

interface PoolEntry {
  readonly url: URL
  readonly pool: Pool
  /**
   * The backend closes a connection after a streamed response (configured, or learned from a
   * stale connection): streamed requests then ask for `Connection: close`, so their sockets never
   * go back to the pool for a later request to find closed.
   */
  closesAfterStreams: boolean
}

function checkMs(name: string, value: number | undefined, fallback: number, allowZero: boolean): number {
  return checkNumber(name, value, fallback, { integer: true, min: allowZero ? 0 : 1 })
}

/**
 * One keep-alive undici `Pool` per backend, created on first use. Keyed by backend id: two
 * backends that share an origin still get separate connections, so one's slow streams do not
 * queue the other's requests.
 */
export class UpstreamPools {
  private readonly pools = new Map<string, PoolEntry>()
  /** Pools closing gracefully: kept so `destroy()` can still cut their in-flight requests. */
  private readonly closing = new Set<Dispatcher>()
  private readonly poolOptions: Pool.Options
  private readonly clientOptions: Client.Options
  private closed = false

  constructor(options: UpstreamPoolOptions = {}) {
    const connections = options.connectionsPerBackend ?? null
    if (connections !== null && (!Number.isInteger(connections) || connections < 1)) {
      fail('connectionsPerBackend', 'an integer at least 1, or null for no limit', connections)
    }
    this.poolOptions = {
      connectTimeout: checkMs('connectTimeoutMs', options.connectTimeoutMs, 5_000, false),
      headersTimeout: checkMs('firstByteTimeoutMs', options.firstByteTimeoutMs, 300_000, true),
      bodyTimeout: checkMs('idleTimeoutMs', options.idleTimeoutMs, 120_000, true),
      keepAliveTimeout: checkMs('keepAliveTimeoutMs', options.keepAliveTimeoutMs, 4_000, false),
      connections,
    }
    const { connections: _, ...clientOptions } = this.poolOptions
    this.clientOptions = clientOptions
  }

  /** The pool for `backend`, dispatching only ever to `backend.url`'s origin. */
  poolFor(backend: BackendTarget): Pool {
    const entry = this.pools.get(backend.id)
    if (entry !== undefined && (entry.url === backend.url || entry.url.origin === backend.url.origin)) {
      return entry.pool
    }
    if (this.closed) throw new Error('the upstream pools are closed')
    const protocol = backend.url.protocol
    if (protocol !== 'http:' && protocol !== 'https:') {
      fail(`backends[${JSON.stringify(backend.id)}].url`, 'an http: or https: URL', backend.url)
    }
    // Same id, new origin: the backend was replaced without closeFor; let in-flight requests finish.
    if (entry !== undefined) void this.closeGracefully(entry.pool).catch(() => {})
    const pool = new (undici().Pool)(backend.url.origin, this.poolOptions)
    this.pools.set(backend.id, {
      url: backend.url,
      pool,
      closesAfterStreams: backend.keepAliveAfterStreams === false,
    })
    return pool
  }

  /** Whether streamed requests to `backend` should close their connection when done. */
  closesAfterStreams(backend: BackendTarget): boolean {
    return this.pools.get(backend.id)?.closesAfterStreams ?? backend.keepAliveAfterStreams === false
  }

  /** A connection of `backend`'s pool was found closed by the backend: stop keeping streamed ones. */
  noteStaleConnection(backend: BackendTarget): void {
    const entry = this.pools.get(backend.id)
    if (entry !== undefined) entry.closesAfterStreams = true
  }

  /**
   * Dispatches one request over a new connection of its own, closed once the response is done:
   * a retry after a stale connection must not be handed another stale socket by the pool.
   */
  dispatchFresh(
    backend: BackendTarget,
    options: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
  ): void {
    if (this.closed) throw new Error('the upstream pools are closed')
    const client = new (undici().Client)(backend.url.origin, this.clientOptions)
    client.dispatch(options, handler)
    void this.closeGracefully(client).catch(() => {})
  }

  /** Closes one backend's pool once its in-flight requests are done (backend removed). */
  async closeFor(id: string): Promise<void> {
    const entry = this.pools.get(id)
    if (entry === undefined) return
    this.pools.delete(id)
    await this.closeGracefully(entry.pool)
  }

  /** Closes every pool, waiting for in-flight requests (streams included) to complete. */
  async close(): Promise<void> {
    this.closed = true
    const entries = [...this.pools.values()]
    this.pools.clear()
    await Promise.all(entries.map((entry) => this.closeGracefully(entry.pool)))
  }

  /**
   * Closes every pool now, failing in-flight requests, those of pools already closing
   * gracefully included: a shutdown deadline must be able to cut a stream `close()` waits for.
   */
  async destroy(): Promise<void> {
    this.closed = true
    const pools: Dispatcher[] = [...this.pools.values()].map((entry) => entry.pool)
    this.pools.clear()
    pools.push(...this.closing)
    this.closing.clear()
    await Promise.all(pools.map((pool) => pool.destroy()))
  }

  private async closeGracefully(pool: Dispatcher): Promise<void> {
    this.closing.add(pool)
    try {
      await pool.close()
    } finally {
      this.closing.delete(pool)
    }
  }
}
