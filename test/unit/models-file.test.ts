/** MODELS_FILE parsing and checks, the routing config in loadConfig, and the model list clients see. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config.js'
import { checkRouting, matchModel, parseModelsFile } from '../../src/providers/models-file.js'
import { configuredModels, isFallbackWorthy } from '../../src/providers/router.js'
import { gatewayError } from '../../src/errors.js'

const tmp = mkdtempSync(join(tmpdir(), 'tokenwire-models-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

const env = { OPENAI_KEY_FAKE: 'sk-test-not-real-a', LOCAL_KEY_FAKE: 'sk-test-not-real-b' }
const json = (models: unknown): string => JSON.stringify({ models })
const parse = (models: unknown, file = 'models.json'): ReturnType<typeof parseModelsFile> => parseModelsFile(json(models), file, env)

function problemsOf (vars: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(vars)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error('expected loadConfig to throw a ConfigError')
}

function writeFile (name: string, text: string): string {
  const path = join(tmp, name)
  writeFileSync(path, text)
  return path
}

describe('parseModelsFile', () => {
  it('reads routes from JSON, resolving each apiKeyEnv from the environment', () => {
    const routes = parse({
      'gpt-4o': { baseURL: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_KEY_FAKE', fallback: ['gpt-4o-mini'] },
      'ft:gpt-4o-mini:*': { baseURL: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_KEY_FAKE', contextTokens: 64_000 },
      'local-llama': { baseURL: 'http://127.0.0.1:11434/v1', upstreamModel: 'llama3.1:8b', fallback: [] }
    })
    expect(routes).toEqual([
      { model: 'gpt-4o', baseURL: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_KEY_FAKE', apiKey: 'sk-test-not-real-a', fallback: ['gpt-4o-mini'] },
      { model: 'ft:gpt-4o-mini:*', baseURL: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_KEY_FAKE', apiKey: 'sk-test-not-real-a', contextTokens: 64_000 },
      { model: 'local-llama', baseURL: 'http://127.0.0.1:11434/v1', upstreamModel: 'llama3.1:8b', fallback: [] }
    ])
  })

  it('reads YAML when the file name says so', () => {
    const text = 'models:\n  gpt-4o:\n    baseURL: https://api.openai.com/v1\n    apiKeyEnv: OPENAI_KEY_FAKE\n    fallback: [local]\n  local:\n    baseURL: http://127.0.0.1:8000/v1\n'
    expect(parseModelsFile(text, 'models.yaml', env).map((r) => r.model)).toEqual(['gpt-4o', 'local'])
  })

  it('lists every apiKeyEnv that is not set, at once', () => {
    expect(() => parse({
      a: { baseURL: 'http://127.0.0.1:1/v1', apiKeyEnv: 'MISSING_ONE' },
      b: { baseURL: 'http://127.0.0.1:2/v1', apiKeyEnv: 'OPENAI_KEY_FAKE' },
      c: { baseURL: 'http://127.0.0.1:3/v1', apiKeyEnv: 'MISSING_TWO' }
    })).toThrow('models.json: apiKeyEnv names environment variables that are not set: MISSING_ONE (model "a"), MISSING_TWO (model "c")')
  })

  it.each([
    ['not json', '{', /models\.json: not valid JSON/],
    ['no models', '{"routes": {}}', /expected \{"models"/],
    ['empty models', '{"models": {}}', /at least one model/],
    ['unknown top-level field', '{"models": {"a": {"baseURL": "http://x/v1"}}, "extra": 1}', /unknown top-level field "extra"/]
  ])('rejects a bad document: %s', (_name, text, message) => {
    expect(() => parseModelsFile(text, 'models.json', env)).toThrow(message)
  })

  it('rejects bad YAML naming the file', () => {
    expect(() => parseModelsFile('models: [unclosed', 'm.yml', env)).toThrow(/m\.yml: not valid YAML/)
  })

  it.each([
    ['a star inside the name', { 'gpt-*-mini': { baseURL: 'http://x/v1' } }, /model "gpt-\*-mini": the name "\*" may only end a name/],
    ['an entry that is not an object', { a: 'http://x/v1' }, /model "a": must be an object/],
    ['an unknown field', { a: { baseURL: 'http://x/v1', timeout: 5 } }, /model "a": unknown field "timeout" \(allowed: baseURL, apiKeyEnv, upstreamModel, contextTokens, fallback\)$/],
    ['a key in the file', { a: { baseURL: 'http://x/v1', apiKey: 'sk-test-not-real' } }, /unknown field "apiKey".*keys never go in this file/],
    ['a bad baseURL', { a: { baseURL: 'ftp://x' } }, /baseURL must be an http\(s\) URL/],
    ['a missing baseURL', { a: {} }, /baseURL must be an http\(s\) URL/],
    ['an apiKeyEnv that looks like a key', { a: { baseURL: 'http://x/v1', apiKeyEnv: 'sk-test-not-real' } }, /apiKeyEnv must be the name of an environment variable/],
    ['a pattern as upstreamModel', { a: { baseURL: 'http://x/v1', upstreamModel: 'gpt-*' } }, /upstreamModel must be a model name/],
    ['a tiny contextTokens', { a: { baseURL: 'http://x/v1', contextTokens: 100 } }, /contextTokens must be a whole number of tokens from 1024/],
    ['a fractional contextTokens', { a: { baseURL: 'http://x/v1', contextTokens: 5000.5 } }, /contextTokens must be a whole number/],
    ['fallback not a list', { a: { baseURL: 'http://x/v1', fallback: 'b' } }, /fallback must be an array of model names/],
    ['a fallback pattern', { a: { baseURL: 'http://x/v1', fallback: ['b*'] } }, /fallback "b\*" must be a model name, not a pattern/],
    ['a fallback to itself', { a: { baseURL: 'http://x/v1', fallback: ['a'] } }, /fallback "a" is the model itself/]
  ])('rejects %s, naming the file and the model', (_name, models, message) => {
    expect(() => parse(models)).toThrow(message)
  })
})

describe('matchModel', () => {
  const routes = [{ model: 'ft:gpt-4o-mini:*' }, { model: 'ft:*' }, { model: 'ft:gpt-4o-mini:acme:special:1' }, { model: 'gpt-4o' }]
  it('prefers the exact name, then the longest prefix', () => {
    expect(matchModel(routes, 'ft:gpt-4o-mini:acme:special:1')?.model).toBe('ft:gpt-4o-mini:acme:special:1')
    expect(matchModel(routes, 'ft:gpt-4o-mini:acme::abc')?.model).toBe('ft:gpt-4o-mini:*')
    expect(matchModel(routes, 'ft:gpt-4.1:acme::abc')?.model).toBe('ft:*')
    expect(matchModel(routes, 'gpt-4o')?.model).toBe('gpt-4o')
    expect(matchModel(routes, 'gpt-4o-mini')).toBeUndefined()
  })
})

describe('checkRouting', () => {
  const routes = parse({ a: { baseURL: 'http://x/v1', fallback: ['b', 'nowhere'] }, b: { baseURL: 'http://y/v1' } })
  it('needs every fallback and DEFAULT_MODEL to reach an upstream when there is no default upstream', () => {
    expect(checkRouting(routes, { file: 'models.json', defaultModel: 'gpt-4o', fallbackModels: ['b', 'also-nowhere', 'x*'], hasDefault: false })).toEqual([
      'UPSTREAM_FALLBACK_MODELS: "also-nowhere": no route matches it and there is no default upstream (OPENAI_BASE_URL / OPENAI_API_KEY)',
      'UPSTREAM_FALLBACK_MODELS: "x*" must be a model name, not a pattern',
      'MODELS_FILE: models.json: model "a": fallback "nowhere": no route matches it and there is no default upstream (OPENAI_BASE_URL / OPENAI_API_KEY)',
      'DEFAULT_MODEL: "gpt-4o": no route matches it and there is no default upstream (OPENAI_BASE_URL / OPENAI_API_KEY)'
    ])
    expect(checkRouting(routes, { file: 'models.json', defaultModel: 'gpt-4o', fallbackModels: ['anything'], hasDefault: true })).toEqual([])
  })
})

describe('loadConfig: routing and the context budget', () => {
  const file = writeFile('models.json', json({
    'gpt-4o': { baseURL: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_KEY_FAKE', fallback: ['local'] },
    'ft:gpt-4o-mini:*': { baseURL: 'https://api.openai.com/v1', apiKeyEnv: 'OPENAI_KEY_FAKE', contextTokens: 64_000 },
    cheap: { baseURL: 'http://127.0.0.1:8000/v1', upstreamModel: 'gpt-4o-mini' },
    local: { baseURL: 'http://127.0.0.1:8000/v1', contextTokens: 8192 }
  }))

  it('without MODELS_FILE: no routes, the default upstream serves everything', () => {
    const config = loadConfig({})
    expect(config.upstream.routing).toEqual({ routes: [], fallbackModels: [], hasDefault: true })
    expect(config.upstream.context).toEqual({ windows: [], defaultWindowTokens: 32_768, defaultReserveTokens: 4096 })
    expect(configuredModels(config)).toEqual(['gpt-4o'])
  })

  it('MODELS_FILE alone: the routes are the only upstreams (no simulator, no default)', () => {
    const config = loadConfig({ ...env, MODELS_FILE: file, UPSTREAM_FALLBACK_MODELS: 'local, cheap' })
    expect(config.upstream.kind).toBe('openai-compatible')
    expect(config.upstream.routing.hasDefault).toBe(false)
    expect(config.upstream.routing.file).toBe(file)
    expect(config.upstream.routing.fallbackModels).toEqual(['local', 'cheap'])
    expect(config.upstream.routing.routes.map((r) => r.model)).toEqual(['gpt-4o', 'ft:gpt-4o-mini:*', 'cheap', 'local'])
    expect(configuredModels(config)).toEqual(['gpt-4o', 'cheap', 'local'])
    // contextTokens, and a renamed model's real window, feed the context budget.
    expect(config.upstream.context.windows).toEqual([
      { model: 'ft:gpt-4o-mini:*', tokens: 64_000 },
      { model: 'cheap', tokens: 128_000 },
      { model: 'local', tokens: 8192 }
    ])
  })

  it('MODELS_FILE with OPENAI_BASE_URL: that is the default upstream for unrouted models', () => {
    const config = loadConfig({ ...env, MODELS_FILE: file, OPENAI_BASE_URL: 'http://127.0.0.1:9/v1', DEFAULT_MODEL: 'mistral' })
    expect(config.upstream.routing.hasDefault).toBe(true)
    expect(configuredModels(config)).toEqual(['mistral', 'gpt-4o', 'cheap', 'local'])
  })

  it('reports a missing apiKeyEnv, listing the variable', () => {
    const problems = problemsOf({ MODELS_FILE: file })
    expect(problems).toEqual([`MODELS_FILE: ${file}: apiKeyEnv names environment variables that are not set: OPENAI_KEY_FAKE (model "gpt-4o"), OPENAI_KEY_FAKE (model "ft:gpt-4o-mini:*")`])
  })

  it('reports an unreadable file, an unroutable DEFAULT_MODEL and bad fallbacks together', () => {
    expect(problemsOf({ MODELS_FILE: join(tmp, 'nope.json') })[0]).toMatch(/^MODELS_FILE: ENOENT/)
    const only = writeFile('only.yaml', 'models:\n  local:\n    baseURL: http://127.0.0.1:8000/v1\n')
    expect(problemsOf({ MODELS_FILE: only, UPSTREAM_FALLBACK_MODELS: 'gpt-4o-mini' })).toEqual([
      'UPSTREAM_FALLBACK_MODELS: "gpt-4o-mini": no route matches it and there is no default upstream (OPENAI_BASE_URL / OPENAI_API_KEY)',
      'DEFAULT_MODEL: "gpt-4o": no route matches it and there is no default upstream (OPENAI_BASE_URL / OPENAI_API_KEY)'
    ])
    expect(loadConfig({ MODELS_FILE: only, DEFAULT_MODEL: 'local' }).upstream.routing.routes).toHaveLength(1)
  })

  it('reads CONTEXT_WINDOW_TOKENS and reports bad entries', () => {
    const config = loadConfig({ CONTEXT_WINDOW_TOKENS: 'gpt-4o=64000, local-*=8192', DEFAULT_CONTEXT_WINDOW_TOKENS: '16384', CONTEXT_OUTPUT_RESERVE_TOKENS: '2048' })
    expect(config.upstream.context).toEqual({ windows: [{ model: 'gpt-4o', tokens: 64_000 }, { model: 'local-*', tokens: 8192 }], defaultWindowTokens: 16_384, defaultReserveTokens: 2048 })
    expect(problemsOf({ CONTEXT_WINDOW_TOKENS: 'gpt-4o,a*b=2000,x=12' })).toEqual([
      'CONTEXT_WINDOW_TOKENS: "gpt-4o": each entry must be model=tokens',
      'CONTEXT_WINDOW_TOKENS: "a*b=2000": "*" may only end a name (a prefix pattern such as "ft:gpt-4o-mini:*")',
      'CONTEXT_WINDOW_TOKENS: "x=12": tokens must be a whole number, at least 1024'
    ])
  })
})

describe('isFallbackWorthy', () => {
  it('falls back on unavailable, timeout, rate limit, broken stream, unknown model and upstream 404 only', () => {
    expect(isFallbackWorthy(gatewayError('GW_ERR_PROVIDER_UNAVAILABLE'))).toBe(true)
    expect(isFallbackWorthy(gatewayError('GW_ERR_PROVIDER_TIMEOUT', ['UPSTREAM_TIMEOUT_MS', 1]))).toBe(true)
    expect(isFallbackWorthy(gatewayError('GW_ERR_PROVIDER_RATE_LIMITED'))).toBe(true)
    expect(isFallbackWorthy(gatewayError('GW_ERR_PROVIDER_STREAM_INTERRUPTED'))).toBe(true)
    expect(isFallbackWorthy(gatewayError('GW_ERR_MODEL_NOT_FOUND', ['x']))).toBe(true)
    expect(isFallbackWorthy(gatewayError('GW_ERR_PROVIDER_REJECTED', [404], { cause: { status: 404 } }))).toBe(true)
    expect(isFallbackWorthy(gatewayError('GW_ERR_PROVIDER_REJECTED', [400], { cause: { status: 400 } }))).toBe(false)
    expect(isFallbackWorthy(gatewayError('GW_ERR_PROVIDER_REJECTED', [400]))).toBe(false)
    expect(isFallbackWorthy(gatewayError('GW_ERR_CONTEXT_LENGTH_EXCEEDED', [1, 'm', 1, 'x']))).toBe(false)
    expect(isFallbackWorthy(new Error('boom'))).toBe(false)
  })
})
