/**
 * Issue 5: keys and tenants — a keys file with hashed keys and per-key limits, the browser
 * subprotocol form, the Origin allow-list (403 before any socket), and ephemeral `ek_` keys
 * minted through the official SDK's `realtime.clientSecrets.create()`.
 */
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import WebSocket from 'ws'
import { EphemeralKeys } from '../../src/auth/ephemeral-keys.js'
import { sha256Hex } from '../../src/auth/keys-file.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'
import { TestClient } from '../helpers/ws-client.js'

const KEY_A = 'sk-test-tenant-a-not-real'
const KEY_B = 'sk-test-tenant-b-not-real'
const SECRET = 'test-ephemeral-secret-not-real-0123456789'
const tmp = mkdtempSync(join(tmpdir(), 'tw-keys-'))
const keysFile = join(tmp, 'keys.yaml')
writeFileSync(keysFile, [
  'keys:',
  `  - key_sha256: ${sha256Hex(KEY_A)}`,
  '    tenant: tenant-a',
  `  - key: ${KEY_B}`,
  '    tenant: tenant-b'
].join('\n'))

let gw: TestGateway | undefined
const clients: TestClient[] = []
afterEach(async () => {
  await Promise.allSettled(clients.splice(0).map(async (c) => c.close()))
  await gw?.close()
  gw = undefined
})
afterAll(() => rmSync(tmp, { recursive: true, force: true }))

async function connect (url: string, protocols?: string[], headers?: Record<string, string>): Promise<TestClient> {
  const client = await TestClient.connect(url, { ...(protocols === undefined ? {} : { protocols }), ...(headers === undefined ? {} : { headers }) })
  clients.push(client)
  return client
}

/** The status and JSON body of a refused upgrade. */
async function refused (url: string, protocols: string[] = [], headers: Record<string, string> = {}): Promise<{ status: number, body: Record<string, any> }> {
  const ws = new WebSocket(url, protocols, { headers })
  const [, response] = await once(ws, 'unexpected-response') as [unknown, NodeJS.ReadableStream & { statusCode: number }]
  let text = ''
  for await (const chunk of response) text += String(chunk)
  return { status: response.statusCode, body: JSON.parse(text) as Record<string, any> }
}

const browser = (key: string) => ['realtime', `openai-insecure-api-key.${key}`]

describe('keys file', () => {
  it('authenticates hashed and plain keys by header or browser subprotocol, and refuses the rest with 401 before upgrading', async () => {
    gw = await startGateway({ env: { GATEWAY_API_KEYS_FILE: keysFile } })
    await connect(gw.url, undefined, { authorization: `Bearer ${KEY_A}` })
    await connect(gw.url, browser(KEY_B))
    for (const key of ['sk-test-unknown-not-real', KEY_A.slice(0, -1), `${KEY_A}x`]) {
      const { status, body } = await refused(gw.url, browser(key))
      expect(status).toBe(401)
      expect(body['error']).toMatchObject({ code: 'invalid_api_key' })
    }
    expect((await refused(gw.url)).status).toBe(401)
    // Keys never reach the logs.
    expect(gw.log.text()).not.toContain(KEY_A)
    expect(gw.log.text()).not.toContain(KEY_B)
  })

  it('keeps tenants apart: a conversation of one tenant is not found for another', async () => {
    gw = await startGateway({ env: { GATEWAY_API_KEYS_FILE: keysFile } })
    const a = await connect(gw.url, browser(KEY_A))
    const b = await TestClient.open(`${gw.url}&conversation_id=${a.conversationId}`, { protocols: browser(KEY_B) })
    clients.push(b)
    expect((await b.next('error'))['error']).toMatchObject({ code: 'conversation_not_found' })
  })
})

describe('ALLOWED_ORIGINS', () => {
  it('refuses a browser from an unlisted origin with 403 before any socket, and admits listed and same-host origins', async () => {
    gw = await startGateway({ env: { ALLOWED_ORIGINS: 'https://app.example.test, https://*.example.org' } })
    const { status, body } = await refused(gw.url, ['realtime'], { origin: 'https://evil.example.test' })
    expect(status).toBe(403)
    expect(body['error']).toMatchObject({ code: 'origin_not_allowed' })
    await connect(gw.url, ['realtime'], { origin: 'https://app.example.test' })
    await connect(gw.url, ['realtime'], { origin: 'https://chat.example.org' })
    await connect(gw.url, ['realtime'], { origin: gw.origin.replace('ws:', 'http:') })
    await connect(gw.url) // no Origin: not a browser
  })

  it('answers CORS preflights for allowed origins only', async () => {
    gw = await startGateway({ env: { ALLOWED_ORIGINS: 'https://app.example.test' } })
    const http = gw.origin.replace('ws:', 'http:')
    const ok = await fetch(`${http}/v1/realtime/client_secrets`, { method: 'OPTIONS', headers: { origin: 'https://app.example.test', 'access-control-request-method': 'POST' } })
    expect(ok.status).toBe(204)
    expect(ok.headers.get('access-control-allow-origin')).toBe('https://app.example.test')
    expect(ok.headers.get('access-control-allow-headers')).toContain('authorization')
    const bad = await fetch(`${http}/v1/realtime/client_secrets`, { method: 'OPTIONS', headers: { origin: 'https://evil.example.test' } })
    expect(bad.status).toBe(403)
    expect(bad.headers.get('access-control-allow-origin')).toBeNull()
  })
})

describe('ephemeral keys (POST /v1/realtime/client_secrets)', () => {
  const env = { GATEWAY_API_KEYS_FILE: keysFile, EPHEMERAL_KEY_SECRET: SECRET }
  const sdk = (key: string) => new OpenAI({ apiKey: key, baseURL: `${gw?.origin.replace('ws:', 'http:') ?? ''}/v1`, maxRetries: 0 })

  it('mints an ek_ key with the official SDK; a browser connects with it as the minting tenant, with the session settings applied', async () => {
    gw = await startGateway({ env })
    const secret = await sdk(KEY_A).realtime.clientSecrets.create({
      expires_after: { anchor: 'created_at', seconds: 120 },
      session: { type: 'realtime', model: 'gpt-4o-mini', instructions: 'Answer in French.' }
    })
    expect(secret.value).toMatch(/^ek_/)
    expect(secret.expires_at).toBeGreaterThan(Date.now() / 1000 + 100)
    expect(secret.session).toMatchObject({ type: 'realtime', model: 'gpt-4o-mini', instructions: 'Answer in French.' })
    expect(gw.log.text()).not.toContain(secret.value)

    const client = await connect(gw.url, browser(secret.value))
    const created = client.events.find((e) => e.type === 'session.created')?.['session']
    expect(created).toMatchObject({ model: 'gpt-4o-mini', instructions: 'Answer in French.' })
    await client.ask('hello')
    const request = gw.sim.requests.at(-1)?.body
    expect(request?.model).toBe('gpt-4o-mini')
    expect(request?.messages[0]).toEqual({ role: 'system', content: 'Answer in French.' })
    // Same tenant as the key that minted it: tenant A's conversation is open to it.
    const direct = await connect(gw.url, browser(KEY_A))
    const viaEk = await connect(`${gw.url}&conversation_id=${direct.conversationId}`, browser(secret.value))
    expect(viaEk.conversationId).toBe(direct.conversationId)
  })

  it('binds a key to one conversation: the socket attaches to it, and another conversation is refused with 403', async () => {
    gw = await startGateway({ env })
    const owner = await connect(gw.url, browser(KEY_A))
    await owner.ask('first turn')
    const other = await connect(gw.url, browser(KEY_A))
    const response = await fetch(`${gw.origin.replace('ws:', 'http:')}/v1/realtime/client_secrets`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' },
      body: JSON.stringify({ conversation_id: owner.conversationId })
    })
    const { value } = await response.json() as { value: string }
    const bound = await connect(gw.url, browser(value))
    expect(bound.conversationId).toBe(owner.conversationId)
    expect((await bound.next('conversation.item.done'))['item']).toMatchObject({ role: 'user' })
    const { status, body } = await refused(`${gw.url}&conversation_id=${other.conversationId}`, browser(value))
    expect(status).toBe(403)
    expect(body['error']).toMatchObject({ code: 'ephemeral_key_not_allowed' })
  })

  it('refuses expired, foreign and tampered ephemeral keys like wrong keys, and never lets one mint another', async () => {
    gw = await startGateway({ env })
    const keyId = `key_${sha256Hex(KEY_A).slice(0, 16)}`
    const expired = new EphemeralKeys(SECRET).mint({ keyId, expiresAt: Math.floor(Date.now() / 1000) - 1 })
    const foreign = new EphemeralKeys('some-other-gateways-secret-not-real-00').mint({ keyId, expiresAt: Math.floor(Date.now() / 1000) + 60 })
    const valid = new EphemeralKeys(SECRET).mint({ keyId, expiresAt: Math.floor(Date.now() / 1000) + 60 })
    for (const key of [expired, foreign, `${valid.slice(0, -2)}AA`]) {
      expect((await refused(gw.url, browser(key))).status).toBe(401)
    }
    await connect(gw.url, browser(valid))
    const nested = await sdk(valid).realtime.clientSecrets.create({}).catch((err: unknown) => err)
    expect(nested).toBeInstanceOf(OpenAI.PermissionDeniedError)
  })

  it('validates the request: a wrong key, bad settings and a foreign conversation get clear errors', async () => {
    gw = await startGateway({ env })
    const wrong = await sdk('sk-test-wrong-not-real').realtime.clientSecrets.create({}).catch((err: unknown) => err)
    expect(wrong).toBeInstanceOf(OpenAI.AuthenticationError)
    const post = async (body: unknown) => {
      const response = await fetch(`${gw?.origin.replace('ws:', 'http:') ?? ''}/v1/realtime/client_secrets`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' },
        body: JSON.stringify(body)
      })
      return { status: response.status, body: await response.json() as Record<string, any> }
    }
    expect(await post({ expires_after: { seconds: 5 } })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } })
    expect(await post({ session: { type: 'realtime', tools: [{ type: 'function' }] } })).toMatchObject({ status: 400, body: { error: { code: 'invalid_value', param: 'session.tools[0].name' } } })
    expect(await post({ session: { type: 'transcription' } })).toMatchObject({ status: 400, body: { error: { param: 'session.type' } } })
    expect(await post({ session: { instructions: 'x'.repeat(5000) } })).toMatchObject({ status: 400, body: { error: { code: 'invalid_request', param: 'session' } } })
    const b = await connect(gw.url, browser(KEY_B))
    expect(await post({ conversation_id: b.conversationId })).toMatchObject({ status: 404, body: { error: { code: 'conversation_not_found' } } })
  })
})

describe('refused upgrades', () => {
  it('close their socket with the response, so a client that never hangs up cannot hold shutdown up', async () => {
    gw = await startGateway({ env: { GATEWAY_API_KEYS_FILE: keysFile } })
    const ws = new WebSocket(gw.url, browser('sk-test-unknown-not-real'))
    const [, response] = await once(ws, 'unexpected-response') as [unknown, { statusCode: number, headers: Record<string, string> }]
    expect(response.statusCode).toBe(401)
    expect(response.headers['connection']).toBe('close')
    // The client keeps its end open; the gateway must still close at once.
    const closing = gw.close()
    gw = undefined
    const outcome = await Promise.race([closing.then(() => 'closed'), new Promise((resolve) => setTimeout(resolve, 3000, 'hung')).then(String)])
    expect(outcome).toBe('closed')
  })
})
