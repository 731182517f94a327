import type { IncomingMessage } from 'node:http'
import { BodyTooLargeError } from '../forward/errors.js'

const JSON_TYPE = /^\s*application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i

/** Whether the request carries a body worth reading for routing. */
export function isJsonRequest(req: IncomingMessage): boolean {
  const type = req.headers['content-type']
  return type !== undefined && JSON_TYPE.test(type)
}

/**
 * Reads a whole request body, up to `limitBytes` (rejects with BodyTooLargeError
 * beyond it), so the `model` field can be read and the same bytes forwarded.
 */
export function readRequestBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'])
    if (declared > limitBytes) {
      reject(new BodyTooLargeError(limitBytes))
      return
    }
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer) => {
      size += chunk.length
      if (size > limitBytes) {
        cleanup()
        reject(new BodyTooLargeError(limitBytes))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = () => {
      cleanup()
      resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size))
    }
    const onError = (error: Error) => {
      cleanup()
      reject(error)
    }
    const onClose = () => {
      if (!req.readableEnded) onError(new Error('the client closed the connection'))
    }
    function cleanup() {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
      req.off('close', onClose)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
    req.on('close', onClose)
  })
}

/** Thrown when a JSON request body does not parse; answered with 400. */
export class InvalidJsonBodyError extends Error {
  override readonly name = 'InvalidJsonBodyError'
}

/** A JSON body parsed once for routing (`model`, prompt text); undefined when empty. */
export function parseJsonBody(body: Buffer): unknown {
  if (body.length === 0) return undefined
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw new InvalidJsonBodyError(`the request body is not valid JSON: ${(error as Error).message}`)
  }
}

/** The `model` field of a JSON body, parsing it once. */
export function modelFromJson(body: Buffer): string | undefined {
  const parsed = parseJsonBody(body)
  if (parsed === null || typeof parsed !== 'object') return undefined
  const model = (parsed as { model?: unknown }).model
  return typeof model === 'string' ? model : undefined
}
