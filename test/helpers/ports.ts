import type { Server } from 'node:http'
import net, { type AddressInfo } from 'node:net'

/** The port a listening server (or a Fastify app's server) is bound to. */
export function portOf(server: Server | net.Server | { server: Server }): number {
  const target = 'server' in server ? server.server : server
  return (target.address() as AddressInfo).port
}

/** Starts `server` on a free port of 127.0.0.1 and resolves with the port. */
export function listen(server: Server | net.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject)
      resolve(portOf(server))
    })
  })
}

/** A port nothing listens on: connections to it are refused at once, and a server may take it. */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  const port = await listen(server)
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/** The same as `freePort`, named for what a test uses it for: a backend that refuses connections. */
export const closedPort = freePort
