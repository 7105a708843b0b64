/** `GET /asyncapi.json`: the protocol's AsyncAPI 3.0 document (protocol/asyncapi.ts), built once. */
import { existsSync, readFileSync } from 'node:fs'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { isRecord } from '../config-document.js'
import { buildAsyncApi } from '../protocol/asyncapi.js'

export interface ProtocolDocsOptions {
  /** Whether the gateway serves TLS itself (the document then says `wss`). */
  readonly tls: boolean
}

/** The installation's package.json version: two folders up from src/transport, three from dist/src/transport. */
function packageVersion (): string {
  for (const path of ['../../package.json', '../../../package.json']) {
    const url = new URL(path, import.meta.url)
    if (!existsSync(url)) continue
    const pkg: unknown = JSON.parse(readFileSync(url, 'utf8'))
    if (isRecord(pkg) && pkg['name'] === 'tokenwire' && typeof pkg['version'] === 'string') return pkg['version']
  }
  return '0.0.0'
}

const plugin: FastifyPluginAsync<ProtocolDocsOptions> = async (app, options) => {
  const document = JSON.stringify(buildAsyncApi({ version: packageVersion(), tls: options.tls }))
  app.get('/asyncapi.json', async (_request, reply) => reply.type('application/json; charset=utf-8').header('cache-control', 'no-cache').send(document))
}

export const protocolDocs = fp(plugin, { name: 'tokenwire-docs', fastify: '5.x' })
