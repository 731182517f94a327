import { isIPv6 } from 'node:net'

/**
 * The rate-limit key for a client address.
 *
 * IPv4 addresses are used as they are. IPv6 addresses are grouped by their /64
 * prefix, since one subscriber usually holds a whole /64 and could otherwise
 * rotate through 2^64 addresses to dodge a limit. IPv4-mapped IPv6
 * (`::ffff:1.2.3.4`, what a dual-stack socket reports) counts as the IPv4 address.
 */
export function clientKeyFromIp(ip: string | undefined): string {
  if (ip === undefined || ip === '') return 'unknown'
  if (ip.indexOf(':') === -1) return ip
  const percent = ip.indexOf('%')
  const address = (percent === -1 ? ip : ip.slice(0, percent)).toLowerCase()
  if (!isIPv6(address)) return ip
  if (address.startsWith('::ffff:') && address.indexOf('.') !== -1) return address.slice(7)
  return `${ipv6Prefix64(address)}::/64`
}

/** The first four groups of an IPv6 address, each without leading zeros. */
function ipv6Prefix64(address: string): string {
  const gap = address.indexOf('::')
  let groups: string[]
  if (gap === -1) {
    groups = address.split(':')
  } else {
    const head = gap === 0 ? [] : address.slice(0, gap).split(':')
    const tailText = address.slice(gap + 2)
    const tail = tailText === '' ? [] : tailText.split(':')
    // A dotted IPv4 tail fills two groups.
    const tailGroups = tail.length + (tailText.indexOf('.') === -1 ? 0 : 1)
    const missing = 8 - head.length - tailGroups
    groups = head.concat(new Array<string>(missing).fill('0'), tail)
  }
  let prefix = ''
  for (let i = 0; i < 4; i++) {
    const group = groups[i] ?? '0'
    prefix +=
      (i === 0 ? '' : ':') + (group.indexOf('.') === -1 ? Number.parseInt(group, 16).toString(16) : '0')
  }
  return prefix
}
