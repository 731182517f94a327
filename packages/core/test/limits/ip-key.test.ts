import { describe, expect, it } from 'vitest'
import { clientKeyFromIp } from '../../src/index.js'

describe('clientKeyFromIp', () => {
  it('uses an IPv4 address as it is', () => {
    expect(clientKeyFromIp('203.0.113.7')).toBe('203.0.113.7')
    expect(clientKeyFromIp('127.0.0.1')).toBe('127.0.0.1')
  })

  it('gives every address of one IPv6 /64 the same key', () => {
    const key = clientKeyFromIp('2001:db8:85a3:8d3::1')
    expect(key).toBe('2001:db8:85a3:8d3::/64')
    for (const ip of [
      '2001:db8:85a3:8d3::2',
      '2001:db8:85a3:8d3:ffff:ffff:ffff:ffff',
      '2001:db8:85a3:8d3:1319:8a2e:370:7348',
      '2001:db8:85a3:8d3::',
    ]) {
      expect(clientKeyFromIp(ip), ip).toBe(key)
    }
  })

  it('gives different /64s different keys', () => {
    const keys = new Set(
      [
        '2001:db8:85a3:8d3::1',
        '2001:db8:85a3:8d4::1',
        '2001:db8:85a4:8d3::1',
        '2001:db9:85a3:8d3::1',
        '2002:db8:85a3:8d3::1',
        '::1',
        'fe80::1',
      ].map(clientKeyFromIp),
    )
    expect(keys.size).toBe(7)
  })

  it('gives compressed, expanded and upper-case spellings of one /64 the same key', () => {
    const key = clientKeyFromIp('2001:db8::1')
    expect(key).toBe('2001:db8:0:0::/64')
    for (const ip of [
      '2001:0db8:0000:0000:0000:0000:0000:0001',
      '2001:db8:0:0:0:0:0:1',
      '2001:DB8::1',
      '2001:0DB8:0:0::abcd',
      '2001:db8:0::1:2:3',
    ]) {
      expect(clientKeyFromIp(ip), ip).toBe(key)
    }
  })

  it('places the :: gap correctly wherever it is', () => {
    expect(clientKeyFromIp('::1')).toBe('0:0:0:0::/64')
    expect(clientKeyFromIp('1::')).toBe('1:0:0:0::/64')
    expect(clientKeyFromIp('1:2::3:4:5:6')).toBe('1:2:0:0::/64')
    expect(clientKeyFromIp('1:2:3::5:6:7:8')).toBe('1:2:3:0::/64')
    expect(clientKeyFromIp('1:2:3:4:5::8')).toBe('1:2:3:4::/64')
  })

  it('strips a zone id', () => {
    expect(clientKeyFromIp('fe80::1%eth0')).toBe('fe80:0:0:0::/64')
    expect(clientKeyFromIp('fe80::2%25en0')).toBe('fe80:0:0:0::/64')
  })

  it('treats IPv4-mapped IPv6, in any spelling, as the IPv4 address', () => {
    for (const ip of [
      '::ffff:203.0.113.7',
      '::FFFF:203.0.113.7',
      '0:0:0:0:0:ffff:203.0.113.7',
      '0000:0000:0000:0000:0000:FFFF:203.0.113.7',
      '::ffff:cb00:7107',
      '::ffff:203.0.113.7%eth0',
    ]) {
      expect(clientKeyFromIp(ip), ip).toBe('203.0.113.7')
    }
  })

  it('keeps IPv4 clients behind mapped addresses apart', () => {
    expect(clientKeyFromIp('::ffff:1.2.3.4')).not.toBe(clientKeyFromIp('::ffff:1.2.3.5'))
    expect(clientKeyFromIp('::ffff:102:304')).toBe('1.2.3.4')
    expect(clientKeyFromIp('::ffff:102:305')).toBe('1.2.3.5')
  })

  it('does not mistake other addresses with an IPv4 tail for mapped ones', () => {
    // IPv4-translated (::ffff:0:0:0/96), IPv4-compatible (::/96) and NAT64 addresses are IPv6 clients.
    expect(clientKeyFromIp('::ffff:0:1.2.3.4')).toBe('0:0:0:0::/64')
    expect(clientKeyFromIp('::1.2.3.4')).toBe('0:0:0:0::/64')
    expect(clientKeyFromIp('64:ff9b::1.2.3.4')).toBe('64:ff9b:0:0::/64')
  })

  it("uses 'unknown' when there is no address", () => {
    expect(clientKeyFromIp(undefined)).toBe('unknown')
    expect(clientKeyFromIp('')).toBe('unknown')
  })

  it('returns keys that are not IP addresses unchanged', () => {
    for (const key of ['user:42', 'API-KEY-abc', 'tenant:a:b', 'x%y:z', 'localhost', '::not-an-ip']) {
      expect(clientKeyFromIp(key), key).toBe(key)
    }
  })
})
