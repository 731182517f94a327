import net from 'node:net'
import { listen } from './ports.js'

/**
 * A TCP proxy in front of a database a test shares with others: cutting it is how a test takes
 * "the database" down without stopping the server other tests use.
 */
export class TcpProxy {
  readonly #target: { host: string; port: number }
  readonly #sockets = new Set<net.Socket>()
  #server: net.Server | undefined
  port = 0

  constructor(target: { host: string; port: number }) {
    this.#target = target
  }

  async start(): Promise<number> {
    const server = net.createServer((client) => {
      const upstream = net.connect(this.#target.port, this.#target.host)
      for (const s of [client, upstream]) {
        this.#sockets.add(s)
        s.on('error', () => {})
        s.on('close', () => {
          this.#sockets.delete(s)
          client.destroy()
          upstream.destroy()
        })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    })
    this.#server = server
    if (this.port === 0) {
      this.port = await listen(server)
    } else {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(this.port, '127.0.0.1', () => resolve())
      })
    }
    return this.port
  }

  /** Drops every connection and refuses new ones until `start` again. */
  async cut(): Promise<void> {
    const server = this.#server
    this.#server = undefined
    for (const s of this.#sockets) s.destroy()
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
