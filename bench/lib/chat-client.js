import http from 'node:http'

/**
 * POSTs `body` (JSON text) to a gateway's `/v1/chat/completions` on 127.0.0.1; resolves the
 * status, headers and body text once the answer is read, rejects on a socket error.
 * `onRequest` sees the request once it is sent (to cut it, say).
 * @param {number} port
 * @param {string} body
 * @param {{ agent?: http.Agent | false, headers?: Record<string, string>, onRequest?: (req: http.ClientRequest) => void }} [options]
 * @returns {Promise<{ status: number, headers: http.IncomingHttpHeaders, text: string }>}
 */
export function postChat(port, body, { agent = false, headers = {}, onRequest } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        port,
        host: '127.0.0.1',
        method: 'POST',
        path: '/v1/chat/completions',
        agent,
        headers: { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            text: Buffer.concat(chunks).toString(),
          }),
        )
      },
    )
    req.on('error', reject)
    req.end(body)
    onRequest?.(req)
  })
}
