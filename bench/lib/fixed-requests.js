import http from 'node:http'

/**
 * Sends exactly `count` GET requests to `url`, `connections` at a time over keep-alive sockets,
 * and resolves once every answer has been read. Rejects on a status other than 200: a count of
 * instructions per request means nothing if some requests were refused. An `agent` passed in is
 * left open, so a later call goes on over the same sockets.
 * @param {{ url: string, count: number, connections: number, agent?: http.Agent }} options
 */
export async function sendRequests({ url, count, connections, agent: given }) {
  const target = new URL(url)
  const agent = given ?? new http.Agent({ keepAlive: true, maxSockets: connections })
  let sent = 0
  let done = 0
  try {
    await new Promise((resolve, reject) => {
      const next = () => {
        if (sent >= count) return
        sent++
        const req = http.get(
          { host: target.hostname, port: target.port, path: target.pathname, agent },
          (res) => {
            res.resume()
            res.on('end', () => {
              if (res.statusCode !== 200) {
                reject(new Error(`${url} answered ${res.statusCode}`))
                return
              }
              if (++done === count) resolve(undefined)
              else next()
            })
          },
        )
        req.on('error', reject)
      }
      for (let i = 0; i < Math.min(connections, count); i++) next()
    })
  } finally {
    if (given === undefined) agent.destroy()
  }
}
