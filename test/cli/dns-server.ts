import { promises as dns } from 'node:dns'
import dns2 from 'dns2'

const { Packet } = dns2

/** A DNS server on 127.0.0.1 answering A queries from a table the test changes, and a resolver using it. */
export async function startDnsServer() {
  const records = new Map<string, string[]>()
  const server = dns2.createServer({
    udp: true,
    handle: (request, send) => {
      const response = Packet.createResponseFromRequest(request)
      const question = request.questions[0]
      const addresses = question ? records.get(question.name) : undefined
      if (addresses === undefined)
        response.header.rcode = 3 // NXDOMAIN
      else if (question?.type === Packet.TYPE.A) {
        for (const address of addresses) {
          // dns2's type asks for the encoder its own records carry; the packet writer does not.
          const answer = { name: question.name, type: Packet.TYPE.A, class: Packet.CLASS.IN, ttl: 1, address }
          response.answers.push(answer as never)
        }
      }
      send(response)
    },
  })
  await server.listen({ udp: { port: 0, address: '127.0.0.1' } })
  const port = (server.addresses().udp as { port: number }).port
  const resolver = new dns.Resolver({ timeout: 300, tries: 1 })
  resolver.setServers([`127.0.0.1:${port}`])
  return { records, resolver, close: () => server.close() }
}
