import type { Server } from 'node:http'

/** Everything a test opened, closed in reverse order by `run()` (call it in afterEach). */
export class Cleanup {
  readonly #closers: (() => Promise<unknown> | unknown)[] = []

  add<T>(closer: () => Promise<unknown> | unknown, value: T): T {
    this.#closers.push(closer)
    return value
  }

  async run(): Promise<void> {
    const closers = this.#closers.splice(0).reverse()
    for (const close of closers) await close()
  }
}

/** Closes an http.Server that may still hold keep-alive or streaming connections. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections()
    server.close(() => resolve())
  })
}
