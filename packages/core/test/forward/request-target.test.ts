import { describe, expect, it } from 'vitest'
import {
  backendPath,
  compilePathRewrite,
  rewriteTarget,
  toOriginForm,
} from '../../src/forward/request-target.js'

describe('toOriginForm', () => {
  it.each([
    ['/v1/models', '/v1/models'],
    ['/v1/models?limit=2&x=%2F', '/v1/models?limit=2&x=%2F'],
    ['//evil.example/x', '/evil.example/x'],
    ['////x', '/x'],
    ['http://evil.example/x?q=1', '/x?q=1'],
    ['HTTP://evil.example:81//x', '/x'],
    ['https://evil.example', '/'],
    ['http://evil.example?q=1', '/?q=1'],
    ['/a/.../b', '/a/.../b'],
    ['/a/..b/c.', '/a/..b/c.'],
    ['/v1/models?path=../../etc', '/v1/models?path=../../etc'],
  ])('%s → %s', (input, expected) => {
    expect(toOriginForm(input)).toBe(expected)
  })

  it.each([
    '',
    '*',
    'v1/models',
    'ftp://host/x',
    '/a/../b',
    '/a/..',
    '/a/.',
    '/./a',
    '/a/%2e%2e/b',
    '/a/%2E./b',
    '/a/.%2E',
    '/a/..%2Fb',
    '/a/..%5cb',
    '/a\\..\\b',
    '/a/..?x',
    'http://evil/../x',
    '/a b',
    '/a\tb',
    '/a#frag',
    '/a\u0000b',
  ])('refuses %j', (input) => {
    expect(toOriginForm(input)).toBeNull()
  })
})

describe('compilePathRewrite', () => {
  const strip = compilePathRewrite({ stripPrefix: '/gw' })
  const swap = compilePathRewrite({ stripPrefix: '/gw', addPrefix: '/v1' })

  it.each([
    [strip, '/gw/v1/models?x=1', '/v1/models?x=1'],
    [strip, '/gw', '/'],
    [strip, '/gw?x=1', '/?x=1'],
    [strip, '/gwx/models', '/gwx/models'],
    [strip, '/other', '/other'],
    [swap, '/gw/models', '/v1/models'],
    [swap, '/gw?x=1', '/v1?x=1'],
  ])('%#: %s → %s', (rewrite, input, expected) => {
    expect(rewrite(input)).toBe(expected)
  })

  it('rejects bad prefixes at creation, quoting them', () => {
    expect(() => compilePathRewrite({ stripPrefix: 'gw' })).toThrow(/"gw"/)
    expect(() => compilePathRewrite({ stripPrefix: '/gw/' })).toThrow(/"\/gw\/"/)
    expect(() => compilePathRewrite({ stripPrefix: '/gw', addPrefix: 'v1' })).toThrow(/"v1"/)
    expect(() => compilePathRewrite({} as never)).toThrow(/stripPrefix/)
  })

  it('re-checks what a rewrite function returns', () => {
    expect(rewriteTarget('/x', () => 'http://evil/x')).toBeNull()
    expect(rewriteTarget('/x', () => '/a/../b')).toBeNull()
    expect(rewriteTarget('/x', () => '//evil/x')).toBe('/evil/x')
  })
})

describe('backendPath', () => {
  it.each([
    ['/', '/v1/models', '/v1/models'],
    ['/base', '/v1/models', '/base/v1/models'],
    ['/base/', '/v1/models', '/base/v1/models'],
    ['/base/', '/?x=1', '/base/?x=1'],
  ])('%s + %s → %s', (base, path, expected) => {
    expect(backendPath(base, path)).toBe(expected)
  })
})
