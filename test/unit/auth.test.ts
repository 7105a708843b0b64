/** The key ring, the keys file, ephemeral keys and the Origin allow-list: pure functions, real crypto. */
import { describe, expect, it } from 'vitest'
import { EphemeralKeys, MAX_EPHEMERAL_KEY_CHARS } from '../../src/auth/ephemeral-keys.js'
import { KeyRing } from '../../src/auth/key-ring.js'
import { parseKeyList, parseKeysFile, sha256Hex } from '../../src/auth/keys-file.js'
import { originAllowed } from '../../src/transport/cors.js'

const defaults = { requestsPerMin: 10, tokensPerMin: 1000, maxSockets: 0 }
const secret = 'test-ephemeral-secret-not-real-0123456789'

describe('parseKeysFile', () => {
  it('reads plain and hashed keys with per-key limits, from JSON and YAML', () => {
    const json = JSON.stringify({
      keys: [
        { key: 'sk-test-alpha-not-real', tenant: 'acme', limits: { requests_per_min: 5, max_sockets: 2 } },
        { key_sha256: sha256Hex('sk-test-beta-not-real'), tenant: 'globex' }
      ]
    })
    const expected = [
      { sha256: sha256Hex('sk-test-alpha-not-real'), tenant: 'acme', limits: { requestsPerMin: 5, maxSockets: 2 } },
      { sha256: sha256Hex('sk-test-beta-not-real'), tenant: 'globex', limits: {} }
    ]
    expect(parseKeysFile(json, 'keys.json')).toEqual(expected)
    const yaml = `keys:\n  - key: sk-test-alpha-not-real\n    tenant: acme\n    limits: { requests_per_min: 5, max_sockets: 2 }\n  - key_sha256: ${sha256Hex('sk-test-beta-not-real')}\n    tenant: globex\n`
    expect(parseKeysFile(yaml, 'keys.yaml')).toEqual(expected)
  })

  it.each([
    ['{', /keys\.json: not valid JSON/],
    ['{"keys": 1}', /expected \{"keys"/],
    ['{"keys": [1]}', /keys\[0\]: an entry must be an object/],
    ['{"keys": [{"tenant": "a"}]}', /exactly one of "key" and "key_sha256"/],
    ['{"keys": [{"key": "short", "tenant": "a"}]}', /8 characters or more/],
    ['{"keys": [{"key_sha256": "abc", "tenant": "a"}]}', /64 lowercase hex/],
    ['{"keys": [{"key": "sk-test-long-enough", "tenant": "a b"}]}', /"tenant" must match/],
    ['{"keys": [{"key": "sk-test-long-enough", "tenant": "a", "role": "x"}]}', /unknown field "role"/],
    ['{"keys": [{"key": "sk-test-long-enough", "tenant": "a", "limits": {"rpm": 1}}]}', /unknown limit "rpm"/],
    ['{"keys": [{"key": "sk-test-long-enough", "tenant": "a", "limits": {"tokens_per_min": -1}}]}', /tokens_per_min must be a whole number/]
  ])('names the file and entry for %s', (text, message) => {
    expect(() => parseKeysFile(text, 'keys.json')).toThrow(message)
  })

  it('names the place of a syntax error but never quotes the file, which holds plain keys', () => {
    const key = 'sk-test-secret-not-real-42'
    const failure = (text: string, file: string): string => {
      try {
        parseKeysFile(text, file)
      } catch (err) {
        return (err as Error).message
      }
      throw new Error('expected a syntax error')
    }
    const json = failure(`{"keys": [{"key": "${key}" "tenant": "a"}]}`, 'keys.json')
    expect(json).toBe('keys.json: not valid JSON at line 1, column 48')
    const yaml = failure(`keys:\n  - key: ${key}: x: y\n    tenant: a\n`, 'keys.yaml')
    expect(yaml).toMatch(/^keys\.yaml: not valid YAML \([A-Z_]+\) at line 2, column \d+$/)
    const bare = failure(`{"keys": [{"key": ${key}}]}`, 'keys.json')
    expect(bare).toBe('keys.json: not valid JSON')
    for (const message of [json, yaml, bare]) expect(message).not.toContain('secret')
  })

  it('reports every bad GATEWAY_API_KEYS entry', () => {
    const problems: string[] = []
    expect(parseKeyList('good-key:t1,bad,x:bad tenant', problems)).toHaveLength(1)
    expect(problems).toEqual(['each entry must be key:tenant', expect.stringMatching(/a tenant must match/)])
  })
})

describe('KeyRing', () => {
  const ring = new KeyRing([
    { sha256: sha256Hex('sk-test-alpha-not-real'), tenant: 'acme', limits: { requestsPerMin: 2 } },
    { sha256: sha256Hex('sk-test-beta-not-real'), tenant: 'globex', limits: {} }
  ], defaults, new EphemeralKeys(secret))

  it('resolves a key to its tenant, a key id that is not the key, and its limits over the defaults', () => {
    const alpha = ring.authenticate('sk-test-alpha-not-real')
    expect(alpha).toEqual({ tenant: 'acme', keyId: `key_${sha256Hex('sk-test-alpha-not-real').slice(0, 16)}`, limits: { ...defaults, requestsPerMin: 2 } })
    expect(ring.authenticate('sk-test-beta-not-real')?.limits).toEqual(defaults)
  })

  it('refuses missing, empty, unknown and near-miss keys', () => {
    for (const key of [undefined, '', 'sk-test-alpha-not-rea', 'sk-test-alpha-not-real ', 'SK-TEST-ALPHA-NOT-REAL']) {
      expect(ring.authenticate(key), String(key)).toBeUndefined()
    }
  })

  it('accepts its own ephemeral keys until they expire, as the key that minted them', () => {
    const parent = ring.authenticate('sk-test-alpha-not-real')
    if (parent === undefined) throw new Error('no parent')
    const now = 1_000_000
    const ek = ring.ephemeral.mint({ keyId: parent.keyId, expiresAt: now + 60, conversationId: 'conv_1', session: { instructions: 'be brief' } })
    expect(ek).toMatch(/^ek_[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/)
    expect(ring.authenticate(ek, now)).toEqual({ ...parent, ephemeral: { keyId: parent.keyId, expiresAt: now + 60, conversationId: 'conv_1', session: { instructions: 'be brief' } } })
    expect(ring.authenticate(ek, now + 60)).toBeUndefined()
  })

  it('refuses foreign, tampered and orphaned ephemeral keys', () => {
    const parent = ring.authenticate('sk-test-beta-not-real')
    if (parent === undefined) throw new Error('no parent')
    const exp = Date.now() / 1000 + 60
    const foreign = new EphemeralKeys('another-secret-entirely-not-real-000000').mint({ keyId: parent.keyId, expiresAt: exp })
    expect(ring.authenticate(foreign)).toBeUndefined()
    const genuine = ring.ephemeral.mint({ keyId: parent.keyId, expiresAt: exp })
    const [body, signature] = genuine.slice(3).split('.')
    const forged = Buffer.from(JSON.stringify({ v: 1, k: parent.keyId, exp: exp + 9999 })).toString('base64url')
    expect(ring.authenticate(`ek_${forged}.${signature}`)).toBeUndefined()
    expect(ring.authenticate(`ek_${body}`)).toBeUndefined()
    expect(ring.authenticate(`ek_${body}.${signature}x`)).toBeUndefined()
    // The minting key was removed: its ephemeral keys die with it.
    const orphan = ring.ephemeral.mint({ keyId: 'key_0000000000000000', expiresAt: exp })
    expect(ring.authenticate(orphan)).toBeUndefined()
  })

  it('with no keys configured, lets everyone in as anonymous, and an ephemeral key keeps its bindings', () => {
    const open = new KeyRing([], defaults, new EphemeralKeys(secret))
    expect(open.enabled).toBe(false)
    expect(open.authenticate(undefined)).toEqual({ tenant: 'anonymous', keyId: 'anonymous', limits: defaults })
    expect(open.authenticate('anything')?.tenant).toBe('anonymous')
    const ek = open.ephemeral.mint({ keyId: 'anonymous', expiresAt: Date.now() / 1000 + 60, conversationId: 'conv_9' })
    expect(open.authenticate(ek)?.ephemeral?.conversationId).toBe('conv_9')
    expect(open.authenticate('ek_garbage')?.ephemeral).toBeUndefined()
  })

  it('refuses to mint a key longer than a header can carry', () => {
    expect(() => ring.ephemeral.mint({ keyId: 'k', expiresAt: 1, session: { instructions: 'x'.repeat(MAX_EPHEMERAL_KEY_CHARS) } })).toThrow(RangeError)
  })
})

describe('originAllowed', () => {
  const allowed = ['https://app.example.com', 'https://*.example.org']
  it.each([
    [undefined, 'gw:8080', undefined, true],
    ['https://evil.test', 'gw:8080', undefined, true],
    [undefined, 'gw:8080', allowed, true],
    ['https://app.example.com', 'gw:8080', allowed, true],
    ['HTTPS://APP.EXAMPLE.COM', 'gw:8080', allowed, true],
    ['https://a.b.example.org', 'gw:8080', allowed, true],
    ['https://example.org', 'gw:8080', allowed, false],
    ['http://a.example.org', 'gw:8080', allowed, false],
    ['https://app.example.com.evil.test', 'gw:8080', allowed, false],
    ['http://gw:8080', 'gw:8080', allowed, true],
    ['null', 'gw:8080', allowed, false],
    ['https://evil.test', 'gw:8080', allowed, false]
  ])('origin %s to host %s with %j: %s', (origin, host, list, expected) => {
    expect(originAllowed(origin, host, list)).toBe(expected)
  })
})
