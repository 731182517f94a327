import type { AttemptOutcome, BackendTarget } from '../balance/types.js'
import type { Logger } from '../limits/insured-store.js'
import type { BackendChange, ForwardStartInfo, GatewayEvents, RequestEvents } from './events.js'

/**
 * Logs as one consumer of `GatewayEvents`: a backend leaving or rejoining rotation always
 * (warn when it leaves, info when it is back), and one access line per forwarded request when
 * `accessLog` is on. Lines name backends by id and never carry headers, bodies or client keys.
 */
export class GatewayLog implements GatewayEvents {
  readonly #logger: Logger
  readonly #access: boolean

  constructor(logger: Logger, access: boolean) {
    this.#logger = logger
    this.#access = access
  }

  forwardStart(info: ForwardStartInfo): RequestEvents | undefined {
    return this.#access ? new AccessLine(this.#logger, info) : undefined
  }

  limitDecision(): void {}

  backendChange(backend: BackendTarget, change: BackendChange): void {
    const id = JSON.stringify(backend.id)
    const logger = this.#logger
    switch (change.kind) {
      case 'ejected':
        logger.warn(
          `tollgate: backend ${id} ejected after ${change.consecutiveFailures} failures in a row, until ${new Date(change.untilMs).toISOString()}`,
        )
        break
      case 'restored':
        info(logger, `tollgate: backend ${id} is back in rotation after its ejection`)
        break
      case 'unhealthy':
        logger.warn(`tollgate: backend ${id} failed its active health checks; out of rotation`)
        break
      case 'healthy':
        info(logger, `tollgate: backend ${id} passes its active health checks again`)
        break
    }
  }
}

function info(logger: Logger, message: string): void {
  if (logger.info !== undefined) logger.info(message)
  else logger.warn(message)
}

class AccessLine implements RequestEvents {
  readonly #startedAt = performance.now()
  #backend = '-'
  #attempts = 0

  constructor(
    private readonly logger: Logger,
    private readonly info: ForwardStartInfo,
  ) {}

  queued(): void {}
  dequeued(): void {}
  attemptStart(backend: BackendTarget, attempt: number): void {
    this.#backend = backend.id
    this.#attempts = attempt
  }
  attemptEnd(_backend: BackendTarget, _outcome: AttemptOutcome): void {}
  responseStart(): void {}
  responseData(): void {}
  tokens(): void {}

  end(status: number, complete: boolean): void {
    const { req, model } = this.info
    const ms = Math.round((performance.now() - this.#startedAt) * 10) / 10
    // The path without its query: a query may hold a key.
    const url = req.url ?? ''
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    info(
      this.logger,
      `tollgate: ${req.method ?? 'GET'} ${JSON.stringify(path)} model=${JSON.stringify(model ?? null)} backend=${JSON.stringify(this.#backend)} attempts=${this.#attempts} status=${status}${complete ? '' : ' cut'} ${ms}ms`,
    )
  }
}
