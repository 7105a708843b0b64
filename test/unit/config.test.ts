import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { sha256Hex } from '../../src/auth/keys-file.js'
import { ConfigError, EnvSchema, loadConfig } from '../../src/config.js'

/** Runs loadConfig and returns the ConfigError it throws (fails the test if it does not throw one). */
function problemsOf (env: NodeJS.ProcessEnv): string[] {
  try {
    loadConfig(env)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    expect((err as ConfigError).code).toBe('GW_ERR_CONFIG_INVALID')
    return (err as ConfigError).problems
  }
  throw new Error('expected loadConfig to throw a ConfigError')
}

const tmp = mkdtempSync(join(tmpdir(), 'tokenwire-config-'))
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

describe('loadConfig defaults', () => {
  it('uses the documented defaults for an empty environment', () => {
    const config = loadConfig({})
    expect(config.port).toBe(8080)
    expect(config.host).toBe('0.0.0.0')
    expect(config.logLevel).toBe('info')
    expect(config.tls).toBeUndefined()
    expect(config.auth.keys).toHaveLength(0)
    expect(config.upstream).toMatchObject({
      kind: 'simulator',
      defaultModel: 'gpt-4o',
      timeoutMs: 60_000,
      idleTimeoutMs: 30_000,
      maxRetries: 2,
      maxRetryDelayMs: 10_000,
      simulator: { firstTokenDelayMs: 250, tokenDelayMs: 30 }
    })
    expect(config.transport).toEqual({
      maxFrameBytes: 4 * 1024 * 1024,
      maxSessions: 10_000,
      heartbeatIntervalMs: 30_000,
      shutdownGraceMs: 10_000,
      shutdownDrainDelayMs: 0
    })
    expect(config.session).toEqual({
      leaseTtlMs: 5000,
      batchLingerMs: 5,
      onDisconnect: 'continue',
      maxItemBytes: 1024 * 1024,
      maxImageBytes: 768 * 1024,
      maxPendingBytes: 8 * 1024 * 1024,
      maxPendingEvents: 64,
      failedResponseErrorEvent: true,
      maxConcurrentResponses: 4,
      maxItemsPerConversation: 1000
    })
    expect(config.auth).toEqual({ keys: [], ephemeralKeyTtlS: 600 })
    expect(config.limits).toEqual({ requestsPerMin: 0, tokensPerMin: 0, outputReserveTokens: 1024, maxSocketsPerKey: 0 })
    expect(config.store).toEqual({ kind: 'memory', keyPrefix: 'tw:', maxConversations: 10_000, ttlMs: 24 * 60 * 60 * 1000, maxLogEvents: 10_000 })
  })

  it('selects the simulator upstream when neither OPENAI_BASE_URL nor OPENAI_API_KEY is set', () => {
    const config = loadConfig({})
    expect(config.upstream.kind).toBe('simulator')
    expect(config.upstream.baseURL).toBeUndefined()
    expect(config.upstream.apiKey).toBeUndefined()
  })

  it('selects the openai-compatible upstream when only OPENAI_API_KEY is set', () => {
    const config = loadConfig({ OPENAI_API_KEY: 'sk-test-fake' })
    expect(config.upstream.kind).toBe('openai-compatible')
    expect(config.upstream.apiKey).toBe('sk-test-fake')
    expect(config.upstream.baseURL).toBeUndefined()
  })

  it('selects the openai-compatible upstream when only OPENAI_BASE_URL is set', () => {
    const config = loadConfig({ OPENAI_BASE_URL: 'http://localhost:11434/v1' })
    expect(config.upstream.kind).toBe('openai-compatible')
    expect(config.upstream.baseURL).toBe('http://localhost:11434/v1')
    expect(config.upstream.apiKey).toBeUndefined()
  })

  it('selects the openai-compatible upstream when both are set', () => {
    const config = loadConfig({ OPENAI_BASE_URL: 'https://api.example.test/v1', OPENAI_API_KEY: 'sk-test-fake' })
    expect(config.upstream.kind).toBe('openai-compatible')
    expect(config.upstream.baseURL).toBe('https://api.example.test/v1')
    expect(config.upstream.apiKey).toBe('sk-test-fake')
  })

  it('treats empty-string values as unset', () => {
    const config = loadConfig({ PORT: '', HOST: '', LOG_LEVEL: '', OPENAI_API_KEY: '', OPENAI_BASE_URL: '', GATEWAY_API_KEYS: '', TLS_CERT_FILE: '' })
    expect(config.port).toBe(8080)
    expect(config.host).toBe('0.0.0.0')
    expect(config.logLevel).toBe('info')
    expect(config.upstream.kind).toBe('simulator')
    expect(config.auth.keys).toHaveLength(0)
    expect(config.tls).toBeUndefined()
  })

  it('ignores environment variables it does not know', () => {
    const config = loadConfig({ PATH: '/usr/bin:/bin', HOME: '/root', SOME_OTHER_PORT: 'abc', PORT: '9000' })
    expect(config.port).toBe(9000)
    expect(JSON.stringify(config)).not.toContain('/usr/bin')
  })
})

describe('loadConfig conversions', () => {
  it('converts numeric strings to numbers', () => {
    const config = loadConfig({
      PORT: '9090',
      UPSTREAM_TIMEOUT_MS: '1500',
      UPSTREAM_IDLE_TIMEOUT_MS: '700',
      UPSTREAM_MAX_RETRIES: '0',
      UPSTREAM_MAX_RETRY_DELAY_MS: '250',
      MAX_FRAME_BYTES: '2048',
      MAX_ITEM_BYTES: '512',
      MAX_PENDING_BYTES: '4096',
      MAX_SESSIONS: '3',
      MAX_CONCURRENT_RESPONSES: '2',
      MAX_ITEMS_PER_CONVERSATION: '50',
      MEMORY_STORE_MAX_CONVERSATIONS: '7',
      CONVERSATION_TTL_MS: '5000',
      HEARTBEAT_INTERVAL_MS: '0',
      SHUTDOWN_GRACE_MS: '100',
      SIMULATOR_FIRST_TOKEN_DELAY_MS: '0',
      SIMULATOR_TOKEN_DELAY_MS: '1',
      EVENT_LOG_MAX_EVENTS: '64',
      LEASE_TTL_MS: '900',
      BATCH_LINGER_MS: '0'
    })
    expect(config.port).toBe(9090)
    expect(config.upstream.timeoutMs).toBe(1500)
    expect(config.upstream.idleTimeoutMs).toBe(700)
    expect(config.upstream.maxRetries).toBe(0)
    expect(config.upstream.maxRetryDelayMs).toBe(250)
    expect(config.upstream.simulator).toEqual({ firstTokenDelayMs: 0, tokenDelayMs: 1 })
    expect(config.transport).toEqual({ maxFrameBytes: 2048, maxSessions: 3, heartbeatIntervalMs: 0, shutdownGraceMs: 100, shutdownDrainDelayMs: 0 })
    expect(config.session).toMatchObject({ leaseTtlMs: 900, batchLingerMs: 0, onDisconnect: 'continue', maxItemBytes: 512, maxPendingBytes: 4096, maxConcurrentResponses: 2, maxItemsPerConversation: 50 })
    expect(config.store).toEqual({ kind: 'memory', keyPrefix: 'tw:', maxConversations: 7, ttlMs: 5000, maxLogEvents: 64 })
  })

  it('selects Redis, or Redis Cluster (which wins), from the environment', () => {
    expect(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6390' }).store).toMatchObject({ kind: 'redis', redisUrl: 'redis://127.0.0.1:6390' })
    expect(loadConfig({ REDIS_URL: 'redis://x:1', REDIS_CLUSTER_NODES: '10.0.0.1:7000,node-b:7001' }).store).toMatchObject({
      kind: 'redis-cluster',
      clusterNodes: [{ host: '10.0.0.1', port: 7000 }, { host: 'node-b', port: 7001 }]
    })
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'no-port' })).toThrow(/REDIS_CLUSTER_NODES/)
    expect(() => loadConfig({ REDIS_URL: 'http://wrong' })).toThrow(/REDIS_URL/)
    expect(() => loadConfig({ ON_DISCONNECT: 'explode' })).toThrow(/ON_DISCONNECT/)
  })

  it('keeps string settings as given', () => {
    const config = loadConfig({ HOST: '127.0.0.1', LOG_LEVEL: 'debug', DEFAULT_MODEL: 'llama3' })
    expect(config.host).toBe('127.0.0.1')
    expect(config.logLevel).toBe('debug')
    expect(config.upstream.defaultModel).toBe('llama3')
  })

  it('accepts every log level', () => {
    for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const) {
      expect(loadConfig({ LOG_LEVEL: level }).logLevel).toBe(level)
    }
  })
})

describe('loadConfig problems', () => {
  it('reports every bad variable at once, one problem per variable', () => {
    const problems = problemsOf({ PORT: 'abc', MAX_FRAME_BYTES: '-1', LOG_LEVEL: 'loud' })
    expect(problems).toHaveLength(3)
    expect(problems.filter((p) => p.startsWith('PORT'))).toHaveLength(1)
    expect(problems.filter((p) => p.startsWith('MAX_FRAME_BYTES'))).toHaveLength(1)
    expect(problems.filter((p) => p.startsWith('LOG_LEVEL'))).toHaveLength(1)
  })

  it('puts every problem in the error message', () => {
    try {
      loadConfig({ PORT: 'abc', LOG_LEVEL: 'loud' })
      expect.unreachable()
    } catch (err) {
      const message = (err as Error).message
      expect(message).toContain('invalid configuration')
      expect(message).toContain('PORT')
      expect(message).toContain('LOG_LEVEL')
    }
  })

  it('quotes the offending value', () => {
    const [problem] = problemsOf({ PORT: 'abc' })
    expect(problem).toContain('"abc"')
  })

  it('rejects values under a minimum', () => {
    expect(problemsOf({ MAX_SESSIONS: '0' })).toEqual([expect.stringMatching(/^MAX_SESSIONS/)])
    expect(problemsOf({ CONVERSATION_TTL_MS: '999' })).toEqual([expect.stringMatching(/^CONVERSATION_TTL_MS/)])
    expect(problemsOf({ MAX_ITEM_BYTES: '255' })).toEqual([expect.stringMatching(/^MAX_ITEM_BYTES/)])
  })

  it('rejects an OPENAI_BASE_URL that is not http(s)', () => {
    expect(problemsOf({ OPENAI_BASE_URL: 'ftp://example.test' })).toEqual([expect.stringMatching(/^OPENAI_BASE_URL/)])
  })
})

describe('GATEWAY_API_KEYS', () => {
  it('parses key:tenant pairs, keeping only each key\'s SHA-256', () => {
    const config = loadConfig({ GATEWAY_API_KEYS: 'k1:t1,k2:t2' })
    expect(config.auth.keys).toEqual([
      { sha256: sha256Hex('k1'), tenant: 't1', limits: {} },
      { sha256: sha256Hex('k2'), tenant: 't2', limits: {} }
    ])
    expect(JSON.stringify(config)).not.toContain('"k1"')
  })

  it('trims whitespace and skips empty entries', () => {
    const config = loadConfig({ GATEWAY_API_KEYS: ' k1:t1 , ,k2:t2,' })
    expect(config.auth.keys.map((k) => k.tenant)).toEqual(['t1', 't2'])
  })

  it('splits on the last colon, so a key may contain colons', () => {
    const config = loadConfig({ GATEWAY_API_KEYS: 'sk:test:fake:tenant-a' })
    expect(config.auth.keys).toEqual([{ sha256: sha256Hex('sk:test:fake'), tenant: 'tenant-a', limits: {} }])
  })

  it('reports an entry without a separator', () => {
    expect(problemsOf({ GATEWAY_API_KEYS: 'k1:t1,bad' })).toEqual(['GATEWAY_API_KEYS: each entry must be key:tenant'])
  })

  it('reports an entry with an empty key or an empty tenant', () => {
    expect(problemsOf({ GATEWAY_API_KEYS: ':t1' })).toHaveLength(1)
    expect(problemsOf({ GATEWAY_API_KEYS: 'k1:' })).toHaveLength(1)
  })

  it('reports each malformed entry', () => {
    expect(problemsOf({ GATEWAY_API_KEYS: 'bad,k1:t1,worse' })).toHaveLength(2)
  })
})

describe('TLS files', () => {
  it('reads the certificate and key when both are set', () => {
    const cert = join(tmp, 'cert.pem')
    const key = join(tmp, 'key.pem')
    writeFileSync(cert, 'fake-cert')
    writeFileSync(key, 'fake-key')
    const config = loadConfig({ TLS_CERT_FILE: cert, TLS_KEY_FILE: key })
    expect(config.tls?.cert.toString()).toBe('fake-cert')
    expect(config.tls?.key.toString()).toBe('fake-key')
  })

  it('reports TLS_CERT_FILE without TLS_KEY_FILE', () => {
    const cert = join(tmp, 'only-cert.pem')
    writeFileSync(cert, 'fake-cert')
    expect(problemsOf({ TLS_CERT_FILE: cert })).toEqual(['TLS_CERT_FILE and TLS_KEY_FILE must be set together'])
  })

  it('reports TLS_KEY_FILE without TLS_CERT_FILE', () => {
    expect(problemsOf({ TLS_KEY_FILE: join(tmp, 'key.pem') })).toEqual(['TLS_CERT_FILE and TLS_KEY_FILE must be set together'])
  })

  it('reports an unreadable TLS file', () => {
    const problems = problemsOf({ TLS_CERT_FILE: join(tmp, 'missing-cert.pem'), TLS_KEY_FILE: join(tmp, 'missing-key.pem') })
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^TLS_CERT_FILE \/ TLS_KEY_FILE: /)
    expect(problems[0]).toContain('missing-cert.pem')
  })

  it('reports API key and TLS problems together', () => {
    const problems = problemsOf({ GATEWAY_API_KEYS: 'bad', TLS_KEY_FILE: join(tmp, 'key.pem') })
    expect(problems).toEqual([
      'GATEWAY_API_KEYS: each entry must be key:tenant',
      'TLS_CERT_FILE and TLS_KEY_FILE must be set together'
    ])
  })
})

describe('the result', () => {
  it('is deeply frozen', () => {
    const config = loadConfig({ OPENAI_API_KEY: 'sk-test-fake', GATEWAY_API_KEYS: 'k1:t1' })
    expect(Object.isFrozen(config)).toBe(true)
    expect(Object.isFrozen(config.upstream)).toBe(true)
    expect(Object.isFrozen(config.upstream.simulator)).toBe(true)
    expect(Object.isFrozen(config.transport)).toBe(true)
    expect(Object.isFrozen(config.session)).toBe(true)
    expect(Object.isFrozen(config.store)).toBe(true)
    expect(() => { (config as { port: number }).port = 1 }).toThrow(TypeError)
    expect(() => { (config.upstream.simulator as { tokenDelayMs: number }).tokenDelayMs = 1 }).toThrow(TypeError)
  })

  it('freezes the tls object too', () => {
    const cert = join(tmp, 'frozen-cert.pem')
    const key = join(tmp, 'frozen-key.pem')
    writeFileSync(cert, 'c')
    writeFileSync(key, 'k')
    const config = loadConfig({ TLS_CERT_FILE: cert, TLS_KEY_FILE: key })
    expect(Object.isFrozen(config.tls)).toBe(true)
    expect(Buffer.isBuffer(config.tls?.cert)).toBe(true)
  })

  it('does not keep a reference to the env object', () => {
    const env: NodeJS.ProcessEnv = { PORT: '9001' }
    const config = loadConfig(env)
    env['PORT'] = '9002'
    expect(config.port).toBe(9001)
  })
})

describe('.env.example', () => {
  const text = readFileSync(new URL('../../.env.example', import.meta.url), 'utf8')
  const assignments = [...text.matchAll(/^(#\s*)?([A-Z][A-Z0-9_]+)=(.*)$/gm)].map((m) => ({ commented: m[1] !== undefined, key: m[2] ?? '', value: m[3] ?? '' }))

  it('names every variable of the schema, and only those', () => {
    const known = Object.keys(EnvSchema.properties).filter((key) => !key.startsWith('OTEL_'))
    expect(assignments.map((a) => a.key).filter((k) => !known.includes(k))).toEqual([])
    expect(known.filter((k) => !assignments.some((a) => a.key === k))).toEqual([])
  })

  it('loads as it stands (its uncommented values are the defaults)', () => {
    const env = Object.fromEntries(assignments.filter((a) => !a.commented).map((a) => [a.key, a.value]))
    expect(() => loadConfig(env)).not.toThrow()
    expect(loadConfig(env)).toEqual(loadConfig({}))
  })
})
