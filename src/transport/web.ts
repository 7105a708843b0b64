/**
 * The browser side: the chat page at `/` (src/web: index.html, chat.css, chat.js, markdown.js), the client
 * library as plain ES modules under `/client/` (src/client), and `GET /v1/models`.
 *
 * How the browser gets the library (no bundler, no build at run time): src/client is written to
 * be browser-ready TypeScript (no Node imports, `.js` import suffixes, type-only protocol
 * imports), so `tsc` — which `npm start` already runs — emits ES modules a browser loads as
 * they are (dist/src/client/*.js), and the gateway serves those files. When the gateway itself
 * runs from its .ts sources (tsx, vitest: development only, where typescript is installed with
 * them), each module is transpiled on first request instead; a compiled gateway never loads
 * typescript. The page's own files are hand-written HTML, CSS and ES modules read from src/web.
 */
import { readFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import type { IncomingHttpHeaders } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { gatewayError, httpErrorBody } from '../errors.js'

/**
 * The models the gateway offers, for `GET /v1/models` and the chat page's picker: the default
 * model, then the exact names MODELS_FILE routes.
 */
export { configuredModels } from '../providers/router.js'

export interface WebRoutesOptions {
  /** The models `GET /v1/models` lists (see {@link configuredModels}). */
  readonly models: () => readonly string[]
  /** Whether a request's key may use the API (`GET /v1/models` answers 401 otherwise). */
  readonly authorize: (headers: IncomingHttpHeaders) => boolean
  /** Folder of index.html, chat.css, chat.js and markdown.js. Default: src/web of this installation. */
  readonly webDir?: URL
  /** Folder of the client library's modules. Default: the `client` folder beside this module's. */
  readonly clientDir?: URL
  /** `js`: serve the folder's .js files (tsc's output); `ts`: transpile its .ts files. Default: as this module runs. */
  readonly clientFormat?: 'js' | 'ts'
}

/** The page's files, by URL path. */
const PAGE_FILES: Readonly<Record<string, { readonly file: string, readonly type: string }>> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/chat.css': { file: 'chat.css', type: 'text/css; charset=utf-8' },
  '/chat.js': { file: 'chat.js', type: 'text/javascript; charset=utf-8' },
  '/markdown.js': { file: 'markdown.js', type: 'text/javascript; charset=utf-8' }
}

/** Module names of the client library: lowercase words and dashes. */
const MODULE_NAME = /^[a-z][a-z-]{0,63}$/

/**
 * The page may load its own scripts and styles only, talk to this gateway only, and show images
 * the user attached (data: and blob: URLs).
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self' ws: wss:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'"
].join('; ')

const here = new URL('.', import.meta.url)

/** src/web: beside this folder when running from sources, three levels up from dist/src/transport. */
function defaultWebDir (): URL {
  const candidates = [new URL('../web/', here), new URL('../../../src/web/', here)]
  return candidates.find((dir) => existsSync(new URL('index.html', dir))) ?? candidates[0] ?? here
}

/** Transpiled sources by path and content, shared by every gateway of the process (tests start many). */
const transpiled = new Map<string, string>()

/** A module of the client library as a browser loads it: tsc's output, or transpiled from sources. */
async function loadModule (dir: URL, format: 'js' | 'ts', name: string): Promise<string | undefined> {
  if (format === 'js') return readIfExists(new URL(`${name}.js`, dir))
  const url = new URL(`${name}.ts`, dir)
  const source = await readIfExists(url)
  if (source === undefined) return undefined
  const key = `${url.href}\n${source}`
  const known = transpiled.get(key)
  if (known !== undefined) return known
  // Development only: the gateway runs through tsx or vitest, which come with typescript.
  const { default: ts } = await import('typescript')
  const output = ts.transpileModule(source, {
    fileName: `${name}.ts`,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true }
  }).outputText
  transpiled.set(key, output)
  return output
}

async function readIfExists (url: URL): Promise<string | undefined> {
  try {
    return await readFile(url, 'utf8')
  } catch (err) {
    if (err instanceof Error && 'code' in err && err.code === 'ENOENT') return undefined
    throw err
  }
}

function notFound (reply: FastifyReply): FastifyReply {
  return reply.code(404).type('text/plain; charset=utf-8').send('not found')
}

const plugin: FastifyPluginAsync<WebRoutesOptions> = async (app, options) => {
  const webDir = options.webDir ?? defaultWebDir()
  const clientDir = options.clientDir ?? new URL('../client/', here)
  // Running from .ts sources (tsx, vitest) rather than tsc's output.
  const clientFormat = options.clientFormat ?? (import.meta.url.endsWith('.ts') ? 'ts' : 'js')
  // Files are read once, on first request; they do not change under a running gateway.
  const cache = new Map<string, Promise<string | undefined>>()
  const cached = (key: string, load: () => Promise<string | undefined>): Promise<string | undefined> => {
    let entry = cache.get(key)
    if (entry === undefined) {
      entry = load()
      cache.set(key, entry)
      entry.catch(() => cache.delete(key)) // a failed read is retried next time
    }
    return entry
  }

  for (const [path, { file, type }] of Object.entries(PAGE_FILES)) {
    app.get(path, async (_request, reply) => {
      const body = await cached(`page:${file}`, async () => readIfExists(new URL(file, webDir)))
      if (body === undefined) return notFound(reply)
      return reply
        .type(type)
        .header('cache-control', 'no-cache')
        .header('content-security-policy', CONTENT_SECURITY_POLICY)
        .header('x-content-type-options', 'nosniff')
        .header('referrer-policy', 'no-referrer')
        .send(body)
    })
  }

  app.get<{ Params: { module: string } }>('/client/:module', async (request, reply) => {
    const match = /^(.+)\.js$/.exec(request.params.module)
    const name = match?.[1]
    if (name === undefined || !MODULE_NAME.test(name)) return notFound(reply)
    const body = await cached(`client:${name}`, async () => loadModule(clientDir, clientFormat, name))
    if (body === undefined) return notFound(reply)
    return reply
      .type('text/javascript; charset=utf-8')
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .send(body)
  })

  app.get('/v1/models', async (request, reply) => {
    if (!options.authorize(request.headers)) {
      const err = gatewayError('GW_ERR_AUTH_UNAUTHORIZED')
      return reply.code(401).send(httpErrorBody(err))
    }
    return { object: 'list', data: options.models().map((id) => ({ id, object: 'model', owned_by: 'tokenwire' })) }
  })
}

export const webRoutes = fp(plugin, { name: 'tokenwire-web', fastify: '5.x' })
