import { describe, expect, it } from 'vitest'
import { validateBackendConfig, validateBackendConfigs } from '../../src/balance/config.js'
import { BackendRegistry } from '../../src/balance/registry.js'
import { OptionError } from '../../src/validation.js'

describe('backend config validation', () => {
  it('fills defaults and derives the id from origin and path', () => {
    const a = validateBackendConfig({ url: 'http://10.0.0.5:8000' })
    expect(a).toMatchObject({
      id: 'http://10.0.0.5:8000',
      weight: 1,
      models: null,
      zone: null,
      maxConcurrency: null,
      keepAliveAfterStreams: true,
    })
    expect(a.url.href).toBe('http://10.0.0.5:8000/')
    const b = validateBackendConfig({ url: 'https://models.internal/v1/', models: ['m', 'm'] })
    expect(b.id).toBe('https://models.internal/v1')
    expect(b.url.pathname).toBe('/v1')
    expect(b.models).toEqual(['m'])
  })

  it('names the option, quotes the value and says what to write', () => {
    expect(() => validateBackendConfigs([{ url: 5 }])).toThrow(OptionError)
    const bad = (config: unknown) => () => validateBackendConfigs([{ url: 'http://a:1' }, config])
    expect(bad({ url: 'http://b:1', weight: -2 })).toThrow(
      'tollgate: option "backends[1].weight" must be a positive number (default 1); got -2',
    )
    expect(bad({ url: 'http://b:1', weight: '3' })).toThrow(
      'tollgate: option "backends[1].weight" must be a positive number (default 1); got "3"',
    )
    expect(bad({ url: 'ftp://b/x' })).toThrow('option "backends[1].url" must be an http: or https: URL')
    expect(bad({ url: 'ftp://b/x' })).toThrow('got "ftp://b/x"')
    expect(bad({ url: 'not a url' })).toThrow(
      `option "backends[1].url" must be an absolute http: or https: URL like 'http://10.0.0.5:8000'`,
    )
    expect(bad({ url: 'http://user:secret@b:1' })).toThrow(
      /without credentials.*got "http:\/\/user:\*\*\*@b:1\/"/,
    )
    expect(bad({ url: 'http://user:secret@b:1' })).not.toThrow(/secret/)
    expect(bad({ url: 'http://b:1/v1?key=x' })).toThrow(
      'without query or fragment, e.g. "http://b:1/v1"; got "http://b:1/v1?key=x"',
    )
    expect(bad({ url: 'http://b:1/#frag' })).toThrow('without query or fragment')
    expect(bad({ url: 'http://b:1', maxConcurrency: 2.5 })).toThrow(
      'option "backends[1].maxConcurrency" must be a positive integer, or left out for no limit; got 2.5',
    )
    expect(bad({ url: 'http://b:1', models: [] })).toThrow(
      'option "backends[1].models" must be a non-empty array of model names',
    )
    expect(bad({ url: 'http://b:1', models: ['ok', ''] })).toThrow(
      'option "backends[1].models[1]" must be a non-empty model name; got ""',
    )
    expect(bad({ url: 'http://b:1', id: '' })).toThrow('option "backends[1].id" must be a non-empty string')
    expect(bad({ url: 'http://b:1', zone: 7 })).toThrow(
      'option "backends[1].zone" must be a non-empty string, or left out; got 7',
    )
    expect(bad({ url: 'http://b:1', keepAliveAfterStreams: 'no' })).toThrow(
      'option "backends[1].keepAliveAfterStreams" must be true or false (default true); got "no"',
    )
    expect(bad({ url: 'http://b:1', weigth: 2 })).toThrow(
      'unknown option "backends[1].weigth"; did you mean "weight"? Known options are url, id, weight',
    )
    expect(bad('http://b:1')).toThrow(
      `option "backends[1]" must be an object like { url: 'http://10.0.0.5:8000' }; got "http://b:1"`,
    )
    expect(() => validateBackendConfigs('http://a')).toThrow('option "backends" must be an array')
  })

  it('rejects duplicate ids, explicit or derived', () => {
    expect(() =>
      validateBackendConfigs([{ url: 'http://a:1' }, { url: 'http://b:1' }, { url: 'http://a:1/' }]),
    ).toThrow(
      'option "backends[2].id" "http://a:1" is already used by backends[0]; give each backend a distinct id',
    )
    const registry = new BackendRegistry([{ url: 'http://a:1', id: 'x' }])
    expect(() => registry.add({ url: 'http://b:1', id: 'x' })).toThrow(
      'option "backend.id" "x" is already registered',
    )
    expect(() => registry.add({ url: 'http://b:1', weight: 0 })).toThrow(
      'option "backend.weight" must be a positive number',
    )
  })
})
