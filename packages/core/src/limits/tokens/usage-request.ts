import { equalsKey, forEachMember, jsonTextStart, OPEN_BRACE, skipSpace } from '../../forward/json-scan.js'

const INCLUDE_USAGE = Buffer.from('"include_usage":true')
const STREAM_OPTIONS = Buffer.from('"stream_options":{"include_usage":true}')
const STREAM_OPTIONS_KEY = Buffer.from('stream_options')
const INCLUDE_USAGE_KEY = Buffer.from('include_usage')
const COMMA = Buffer.from(',')

/**
 * The body of a streamed request with `stream_options.include_usage` set to true, so the stream
 * ends with a usage chunk to charge. The bytes are spliced, never re-serialised: every other field
 * reaches the backend as the client wrote it. A parser keeps the last of repeated keys, so the
 * last `stream_options` (and its last `include_usage`) is the one changed.
 */
export function askForUsage(body: Buffer): Buffer {
  const open = skipSpace(body, jsonTextStart(body))
  let options: [number, number] | undefined
  forEachMember(body, open, (keyStart, keyEnd, start, end) => {
    if (equalsKey(body, keyStart, keyEnd, STREAM_OPTIONS_KEY)) options = [start, end]
  })
  if (options === undefined) {
    const empty = body[skipSpace(body, open + 1)] === 0x7d
    return splice(body, open + 1, open + 1, empty ? STREAM_OPTIONS : Buffer.concat([STREAM_OPTIONS, COMMA]))
  }
  const [start, end] = options
  if (body[start] !== OPEN_BRACE) return splice(body, start, end, Buffer.from('{"include_usage":true}'))
  let flag: [number, number] | undefined
  forEachMember(body, start, (keyStart, keyEnd, _valueStart, valueEnd) => {
    if (equalsKey(body, keyStart, keyEnd, INCLUDE_USAGE_KEY)) flag = [keyStart, valueEnd]
  })
  if (flag !== undefined) return splice(body, flag[0], flag[1], INCLUDE_USAGE)
  const empty = body[skipSpace(body, start + 1)] === 0x7d
  return splice(body, start + 1, start + 1, empty ? INCLUDE_USAGE : Buffer.concat([INCLUDE_USAGE, COMMA]))
}

function splice(body: Buffer, from: number, to: number, insert: Buffer): Buffer {
  return Buffer.concat([body.subarray(0, from), insert, body.subarray(to)])
}
