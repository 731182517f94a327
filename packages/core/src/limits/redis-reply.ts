/**
 * A Lua function for the store's scripts: answers a table of integers as one status string,
 * `"1 41 59000 1764633600123"`. `%d` and not `tostring`: Lua writes numbers with 14 significant
 * digits, so a count near the 15-digit cap would come back rounded (`1.2345678901235e+14`).
 */
export const REPLY_LUA = `
local function reply(values)
  for i = 1, #values do values[i] = string.format('%d', values[i]) end
  return {ok = table.concat(values, ' ')}
end
`

/**
 * The integers of a reply `REPLY_LUA` made, written into `values` (from index 0); gives how many.
 * Throws a TypeError for anything else, so a script of another version (or a proxy that rewrote
 * the reply) is an error, never a count.
 */
export function replyIntegers(reply: unknown, values: number[]): number {
  if (typeof reply !== 'string' || reply.length === 0) throw unexpected(reply)
  let count = 0
  let value = 0
  let sign = 1
  let digits = 0
  for (let i = 0; i <= reply.length; i++) {
    const code = i < reply.length ? reply.charCodeAt(i) : 32
    if (code >= 48 && code <= 57) {
      value = value * 10 + (code - 48)
      digits++
    } else if (code === 32) {
      if (digits === 0) throw unexpected(reply)
      values[count++] = sign * value
      value = 0
      sign = 1
      digits = 0
    } else if (code === 45 && digits === 0 && sign === 1) {
      sign = -1
    } else {
      throw unexpected(reply)
    }
  }
  return count
}

function unexpected(reply: unknown): TypeError {
  const what =
    typeof reply === 'string'
      ? `a string of ${reply.length} characters`
      : Array.isArray(reply)
        ? `an array of ${reply.length} items`
        : typeof reply
  return new TypeError(`Unexpected reply from the rate-limit script (${what})`)
}
