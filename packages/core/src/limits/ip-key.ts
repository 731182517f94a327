import { isIPv6 } from 'node:net'

/**
 * The rate-limit key for a client address.
 *
 * IPv4 addresses are used as they are. IPv6 addresses are grouped by their /64
 * prefix, since one subscriber usually holds a whole /64 and could otherwise
 * rotate through 2^64 addresses to dodge a limit. IPv4-mapped IPv6
 * (`::ffff:1.2.3.4`, what a dual-stack socket reports, in any spelling) counts as
 * the IPv4 address: grouping those by /64 would put every IPv4 client in one bucket.
 */
export function clientKeyFromIp(ip: string | undefined): string {
  if (ip === undefined || ip === '') return 'unknown'
  if (ip.indexOf(':') === -1) return ip
  const percent = ip.indexOf('%')
  const address = percent === -1 ? ip : ip.slice(0, percent)
  if (!isIPv6(address)) return ip
  const groups = ipv6Groups(address)
  if (
    groups[0] === 0 &&
    groups[1] === 0 &&
    groups[2] === 0 &&
    groups[3] === 0 &&
    groups[4] === 0 &&
    groups[5] === 0xffff
  ) {
    const high = groups[6]!
    const low = groups[7]!
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`
  }
  return `${groups[0]!.toString(16)}:${groups[1]!.toString(16)}:${groups[2]!.toString(16)}:${groups[3]!.toString(16)}::/64`
}

/** The eight 16-bit groups of a valid IPv6 address (already checked with `isIPv6`). */
function ipv6Groups(address: string): number[] {
  const gap = address.indexOf('::')
  const head = gap === -1 ? address.split(':') : gap === 0 ? [] : address.slice(0, gap).split(':')
  const tailText = gap === -1 ? '' : address.slice(gap + 2)
  const tail = tailText === '' ? [] : tailText.split(':')
  const groups: number[] = []
  for (const part of head) pushGroup(groups, part)
  const tailGroups: number[] = []
  for (const part of tail) pushGroup(tailGroups, part)
  while (groups.length + tailGroups.length < 8) groups.push(0)
  return groups.concat(tailGroups)
}

// A dotted IPv4 tail (`::ffff:1.2.3.4`) stands for the last two groups.
function pushGroup(groups: number[], part: string): void {
  if (part.indexOf('.') === -1) {
    groups.push(Number.parseInt(part, 16))
    return
  }
  const [a, b, c, d] = part.split('.').map(Number)
  groups.push((a! << 8) | b!, (c! << 8) | d!)
}
