import type { Socket } from 'node:net'
import type { FastifyRequest } from 'fastify'

const CLIENT_ADDRESS = Symbol('tollgate.clientAddress')

type AddressedSocket = Socket & { [CLIENT_ADDRESS]?: string }

/**
 * The client address tollgate keys a request by: `request.ip`, read once per connection when it
 * is the socket's address. Without `trustProxy`, Fastify's `request.ip` is the socket's remote
 * address, which Node looks up anew on every read (a few hundred instructions, about a tenth of
 * what counting the request costs); it cannot change while the connection lasts, so the first
 * request of a keep-alive connection stores it on the socket. With `trustProxy` (Fastify then
 * defines `request.ips`) it comes from `X-Forwarded-For` and is read per request, as Fastify does.
 */
export function clientAddress(request: FastifyRequest): string | undefined {
  if ('ips' in request) return request.ip
  const socket = request.raw.socket as AddressedSocket | undefined
  if (socket == null) return request.ip
  let address = socket[CLIENT_ADDRESS]
  if (address === undefined) {
    address = socket.remoteAddress
    // A socket that has no address (closed already) is asked again by its next request.
    if (address !== undefined) socket[CLIENT_ADDRESS] = address
  }
  return address
}
