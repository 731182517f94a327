/**
 * A Redis connection error in a few words an operator acts on (`connection refused
 * 127.0.0.1:6379`), from the Node error ioredis passes on. Never the URL: it may hold a password.
 */
export function redisProblem(error: unknown): string {
  const e = error as { code?: string; address?: string; port?: number; message?: string }
  const where = e.address === undefined ? '' : ` ${e.address}${e.port === undefined ? '' : `:${e.port}`}`
  switch (e.code) {
    case 'ECONNREFUSED':
      return `connection refused${where}`
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `host not found${where}`
    case 'ETIMEDOUT':
      return `connection timed out${where}`
    case 'ECONNRESET':
      return `connection reset${where}`
  }
  const message = String(e.message ?? error).replace(/\/\/[^/@\s]*@/g, '//***@')
  return message.length > 200 ? `${message.slice(0, 200)}…` : message
}
