/**
 * Reading a request as vLLM's FastAPI front end does: Python's `json.loads(bytes)` picks the
 * encoding from the first bytes (a UTF-8 byte order mark is skipped, UTF-16 and UTF-32 are
 * decoded) and accepts the bare literals `NaN`, `Infinity` and `-Infinity` (read here as null);
 * pydantic then reads an integer field leniently (`"5000"` and `500.0` are 500).
 */

/** @typedef {'utf-16le' | 'utf-16be' | 'utf-32le' | 'utf-32be'} WideEncoding */

/**
 * Python's `json.detect_encoding`.
 * @param {Buffer} b
 * @returns {{ encoding: 'utf-8' | WideEncoding, skip: number }}
 */
function detectEncoding(b) {
  if (b[0] === 0 && b[1] === 0 && b[2] === 0xfe && b[3] === 0xff) return { encoding: 'utf-32be', skip: 4 }
  if (b[0] === 0xff && b[1] === 0xfe && b[2] === 0 && b[3] === 0) return { encoding: 'utf-32le', skip: 4 }
  if (b[0] === 0xfe && b[1] === 0xff) return { encoding: 'utf-16be', skip: 2 }
  if (b[0] === 0xff && b[1] === 0xfe) return { encoding: 'utf-16le', skip: 2 }
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return { encoding: 'utf-8', skip: 3 }
  if (b.length >= 4) {
    if (!b[0]) return { encoding: b[1] ? 'utf-16be' : 'utf-32be', skip: 0 }
    if (!b[1]) return { encoding: b[2] || b[3] ? 'utf-16le' : 'utf-32le', skip: 0 }
  }
  return { encoding: 'utf-8', skip: 0 }
}

/** @param {Buffer} bytes @param {WideEncoding} encoding */
function decodeWide(bytes, encoding) {
  if (encoding === 'utf-16le') return bytes.toString('utf16le')
  if (encoding === 'utf-16be') return Buffer.from(bytes).swap16().toString('utf16le')
  let text = ''
  for (let i = 0; i + 3 < bytes.length; i += 4) {
    const code = encoding === 'utf-32le' ? bytes.readUInt32LE(i) : bytes.readUInt32BE(i)
    text += String.fromCodePoint(code)
  }
  return text
}

/**
 * The body's JSON value; throws SyntaxError as `json.loads` would.
 * @param {Buffer} raw
 */
export function parseRequestJson(raw) {
  const { encoding, skip } = detectEncoding(raw)
  const bytes = raw.subarray(skip)
  const text = encoding === 'utf-8' ? bytes.toString('utf8') : decodeWide(bytes, encoding)
  try {
    return JSON.parse(text)
  } catch (err) {
    // Python's literals outside strings: the strings are kept, each literal becomes null.
    const lenient = text.replace(/"(?:[^"\\]|\\.)*"|-?Infinity|NaN/g, (m) => (m.startsWith('"') ? m : 'null'))
    if (lenient === text) throw err
    return JSON.parse(lenient)
  }
}

/**
 * A pydantic `int` field in lax mode: an integral number or a string of digits; undefined for
 * absent or null; NaN for anything else (the caller answers 400).
 * @param {unknown} value
 */
export function laxInteger(value) {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'string' && /^\s*[+-]?\d+\s*$/.test(value)) return Number(value)
  if (typeof value === 'number' && Number.isInteger(value)) return value
  return Number.NaN
}
