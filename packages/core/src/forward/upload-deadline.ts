import type { IncomingMessage } from 'node:http'
import { UploadTimeoutError } from './errors.js'

/**
 * `uploadTimeoutMs` for one request: fires `onExpired` unless the request body has fully arrived
 * by then. A client trickling its body cannot hold a connection, or a backend's slot, for longer.
 */
export class UploadDeadline {
  private readonly timer: NodeJS.Timeout
  private readonly onEnd = (): void => this.clear()

  constructor(
    private readonly req: IncomingMessage,
    timeoutMs: number,
    onExpired: (error: UploadTimeoutError) => void,
  ) {
    this.timer = setTimeout(() => {
      this.req.off('end', this.onEnd)
      if (!this.req.complete) onExpired(new UploadTimeoutError(timeoutMs))
    }, timeoutMs)
    req.once('end', this.onEnd)
  }

  clear(): void {
    clearTimeout(this.timer)
    this.req.off('end', this.onEnd)
  }
}
