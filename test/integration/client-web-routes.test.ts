/**
 * What the gateway serves to browsers (src/transport/web.ts): the chat page with a strict
 * content security policy, the client library as ES modules that load as they are (checked here
 * by importing what was served), and GET /v1/models behind the gateway's keys.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { listModels } from '../../src/client/index.js'
import { configuredModels, webRoutes } from '../../src/transport/web.js'
import { startGateway, type TestGateway } from '../helpers/build-app.js'

let gw: TestGateway
let http: string
const cleanups: Array<() => Promise<unknown>> = []

beforeAll(async () => {
  gw = await startGateway()
  http = gw.origin.replace(/^ws/, 'http')
})
afterAll(async () => gw.close())
afterEach(async () => {
  await Promise.allSettled(cleanups.splice(0).map(async (cleanup) => cleanup()))
})

async function tempDir (): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tw-web-'))
  cleanups.push(async () => rm(dir, { recursive: true, force: true }))
  return dir
}

describe('the chat page', () => {
  it('is served at / with a content security policy that allows only this gateway', async () => {
    const response = await fetch(`${http}/`)
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8')
    const csp = response.headers.get('content-security-policy') ?? ''
    expect(csp).toContain("script-src 'self'")
    expect(csp).toContain("default-src 'none'")
    expect(response.headers.get('x-content-type-options')).toBe('nosniff')
    const html = await response.text()
    expect(html).toContain('<script type="module" src="/chat.js"></script>')
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/) // no inline script: the policy would block it
    expect(html).not.toMatch(/\sstyle="/) // no inline style either
  })

  it('serves its script, markdown module and styles with their types', async () => {
    for (const [path, type, marker] of [
      ['/chat.js', 'text/javascript; charset=utf-8', "from '/client/index.js'"],
      ['/markdown.js', 'text/javascript; charset=utf-8', 'export function renderMarkdown'],
      ['/chat.css', 'text/css; charset=utf-8', 'prefers-color-scheme: dark']
    ] as const) {
      const response = await fetch(`${http}${path}`)
      expect(response.status, path).toBe(200)
      expect(response.headers.get('content-type'), path).toBe(type)
      expect(await response.text(), path).toContain(marker)
    }
  })
})

describe('the client library as browser modules', () => {
  it('serves ES modules that load as they are, with no Node imports', async () => {
    // Fetch index.js and everything it imports, as a browser would, then import them here.
    const dir = await tempDir()
    const pending = ['index']
    const fetched = new Set<string>()
    while (pending.length > 0) {
      const name = pending.pop() ?? ''
      if (fetched.has(name)) continue
      fetched.add(name)
      const response = await fetch(`${http}/client/${name}.js`)
      expect(response.status, name).toBe(200)
      expect(response.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
      const code = await response.text()
      for (const [, specifier] of code.matchAll(/^(?:import|export)\b[^'\n]*\bfrom\s+'([^']+)'/gm)) {
        expect(specifier, `${name}.js imports ${specifier}`).toMatch(/^\.\/[a-z-]+\.js$/)
        pending.push(specifier?.slice(2, -3) ?? '')
      }
      await writeFile(join(dir, `${name}.js`), code)
    }
    expect([...fetched].sort()).toEqual(['client-tools', 'close-policy', 'connection', 'cursor', 'emitter', 'index', 'models', 'reply', 'tokenwire-client', 'web-socket'])
    // The page preloads exactly these modules.
    const html = await (await fetch(`${http}/`)).text()
    const preloaded = [...html.matchAll(/<link rel="modulepreload" href="\/client\/([a-z-]+)\.js">/g)].map((m) => m[1])
    expect(preloaded.sort()).toEqual([...fetched].sort())
    const library: Record<string, unknown> = await import(pathToFileURL(join(dir, 'index.js')).href)
    expect(Object.keys(library).sort()).toEqual(['ClientTools', 'ModelsError', 'Reply', 'ReplyError', 'TokenwireClient', 'backoffDelay', 'closeAction', 'listModels', 'modelsUrl', 'parseCursor', 'randomId', 'responseError'])
  })

  it('answers 404 for anything that is not one of its modules', async () => {
    for (const path of ['/client/nope.js', '/client/Index.js', '/client/index.ts', '/client/index', '/client/.js', '/client/a.b.js']) {
      expect((await fetch(`${http}${path}`)).status, path).toBe(404)
    }
  })

  it('serves tsc\'s output as is when compiled, and reports a file it cannot read', async () => {
    const dir = await tempDir()
    await writeFile(join(dir, 'index.js'), 'export const compiled = true\n')
    await mkdir(join(dir, 'broken.js'))
    const app = await standalone({ clientDir: pathToFileURL(`${dir}/`), clientFormat: 'js', webDir: pathToFileURL(`${dir}/`) })
    const served = await app.inject('/client/index.js')
    expect([served.statusCode, served.body]).toEqual([200, 'export const compiled = true\n'])
    expect((await app.inject('/client/missing.js')).statusCode).toBe(404)
    expect((await app.inject('/client/broken.js')).statusCode).toBe(500)
    expect((await app.inject('/client/broken.js')).statusCode).toBe(500) // not cached: tried again
    expect((await app.inject('/')).statusCode).toBe(404) // no index.html in that folder
  })
})

describe('GET /v1/models', () => {
  it('lists the configured models in the OpenAI shape', async () => {
    const response = await fetch(`${http}/v1/models`)
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ object: 'list', data: [{ id: 'gpt-4o', object: 'model', owned_by: 'tokenwire' }] })
    expect(configuredModels({ upstream: { ...gw.config.upstream, defaultModel: 'llama-3.1-8b' } })).toEqual(['llama-3.1-8b'])
    expect(await listModels(gw.url)).toEqual([{ id: 'gpt-4o' }]) // what the page's model picker reads
  })

  it('needs a gateway key when keys are configured', async () => {
    const secured = await startGateway({ env: { GATEWAY_API_KEYS: 'sk-test-not-real:acme' } })
    cleanups.push(async () => secured.close())
    const url = `${secured.origin.replace(/^ws/, 'http')}/v1/models`
    const refused = await fetch(url)
    expect(refused.status).toBe(401)
    expect(await refused.json()).toMatchObject({ error: { code: 'invalid_api_key' } })
    expect((await fetch(url, { headers: { authorization: 'Bearer sk-wrong' } })).status).toBe(401)
    const allowed = await fetch(url, { headers: { authorization: 'Bearer sk-test-not-real' } })
    expect(allowed.status).toBe(200)
  })
})

async function standalone (options: Partial<Parameters<typeof webRoutes>[1]>): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(webRoutes, { models: () => ['m'], authorize: () => true, ...options })
  cleanups.push(async () => app.close())
  return app
}
