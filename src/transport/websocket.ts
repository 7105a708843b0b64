/**
 * The Realtime endpoint: GET /v1/realtime upgraded to WebSocket. Authenticates at upgrade,
 * adapts the `ws` socket to a SessionSocket and hands every frame to a Session. No logic here.
 */
import websocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import type { Config } from '../config.js'
import { gatewayError } from '../errors.js'
import { newId } from '../ids.js'
import { CloseCodes } from '../protocol/close-codes.js'
import { createCodec } from '../protocol/codec.js'
import type { ChainDefinition } from '../chains/chains-file.js'
import type { ConversationHubs } from '../conversation/hub.js'
import type { ModelProvider } from '../providers/provider.js'
import { ConversationResponses } from '../session/conversation-responses.js'
import { Session, type SessionTools } from '../session/session.js'
import type { SessionMcp } from '../session/session-mcp.js'
import type { SessionManager } from '../session/session-manager.js'
import type { SessionSocket } from '../session/socket.js'
import { connectMcp } from '../tools/mcp.js'
import type { Backend } from '../store/conversation-store.js'
import { authenticate } from './auth.js'

export interface WebSocketTransportOptions {
  readonly config: Config
  readonly provider: ModelProvider
  readonly backend: Backend
  readonly hubs: ConversationHubs
  /** Names this instance in conversation leases. */
  readonly instanceId: string
  readonly sessions: SessionManager
  readonly tools: SessionTools
  readonly chains: ReadonlyMap<string, ChainDefinition>
  /** The gateway's own MCP servers, shared by every session. */
  readonly sharedMcp: SessionMcp
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The tenant authenticated at upgrade (set in preValidation). */
    tenant: string
  }
}

interface RealtimeQuery {
  model?: string
  /** Extension: attach to this stored conversation. */
  conversation_id?: string
  /** Extension: with conversation_id, deliver exactly the events after this event_id. */
  resume_after?: string
}

const plugin: FastifyPluginAsync<WebSocketTransportOptions> = async (app, { config, provider, backend, hubs, instanceId, sessions, tools, chains, sharedMcp }) => {
  const codec = createCodec({ maxItemBytes: config.session.maxItemBytes })
  const responses = new ConversationResponses({
    backend,
    hubs,
    instanceId,
    leaseTtlMs: config.session.leaseTtlMs,
    batchLingerMs: config.session.batchLingerMs
  })
  await app.register(websocket, {
    options: {
      maxPayload: config.transport.maxFrameBytes,
      // Native and browser clients fail unless the server selects `realtime`.
      handleProtocols: (protocols) => protocols.has('realtime') ? 'realtime' : false
    },
    preClose: async () => {
      sessions.drain()
    }
  })
  app.decorateRequest('tenant', '')

  app.get<{ Querystring: RealtimeQuery }>('/v1/realtime', {
    websocket: true,
    schema: {
      querystring: {
        type: 'object',
        properties: {
          model: { type: 'string', minLength: 1, maxLength: 256 },
          conversation_id: { type: 'string', minLength: 1, maxLength: 128 },
          resume_after: { type: 'string', minLength: 1, maxLength: 128 }
        }
      }
    },
    preValidation: async (request, reply) => {
      const tenant = authenticate(request.headers, config.apiKeys)
      if (tenant === undefined) {
        const err = gatewayError('GW_ERR_AUTH_UNAUTHORIZED')
        return reply.code(401).send({ error: { type: err.type, code: err.wire, message: err.message } })
      }
      request.tenant = tenant
      return undefined
    }
  }, (socket, request) => {
    if (!sessions.hasRoom()) {
      socket.close(sessions.draining ? CloseCodes.SERVICE_RESTART : CloseCodes.TRY_AGAIN_LATER, 'no room for another session')
      return
    }
    const sessionId = newId('sess')
    const { conversation_id: conversationId, resume_after: resumeAfter } = request.query
    const session = new Session({
      id: sessionId,
      socket: adapt(socket),
      codec,
      backend,
      hubs,
      responses,
      tools,
      chains,
      provider,
      ...(conversationId === undefined ? {} : { attach: { conversationId, ...(resumeAfter === undefined ? {} : { resumeAfter }) } }),
      tenant: request.tenant,
      model: request.query.model ?? config.upstream.defaultModel,
      defaultModel: config.upstream.defaultModel,
      limits: { ...config.session, maxToolSteps: config.tools.maxSteps, mcpTimeoutMs: config.tools.mcpTimeoutMs },
      connectMcp,
      sharedMcp,
      log: request.log.child({ sessionId })
    })
    sessions.add(session)
    // Attached synchronously, before any await: no frame can be missed.
    socket.on('message', (data: RawData, isBinary: boolean) => session.receive(toBuffer(data), isBinary))
    socket.on('close', (code: number) => {
      session.closed(code)
      sessions.remove(session)
    })
    socket.on('error', (err) => request.log.debug({ err }, 'socket error'))
    watchHeartbeat(socket, config.transport.heartbeatIntervalMs)
  })
}

/** Adapts a `ws` socket to what a Session needs. */
function adapt (socket: WebSocket): SessionSocket {
  return {
    send: (data) => { if (socket.readyState === socket.OPEN) socket.send(data) },
    get bufferedAmount () { return socket.bufferedAmount },
    get isOpen () { return socket.readyState === socket.OPEN },
    close: (code, reason) => { if (socket.readyState <= socket.OPEN) socket.close(code, reason) }
  }
}

/** Pings every `intervalMs`; a peer that answered no ping since the last one is dropped. */
function watchHeartbeat (socket: WebSocket, intervalMs: number): void {
  if (intervalMs === 0) return
  let alive = true
  socket.on('pong', () => { alive = true })
  const timer = setInterval(() => {
    if (!alive) {
      socket.terminate()
      return
    }
    alive = false
    socket.ping()
  }, intervalMs).unref()
  socket.once('close', () => clearInterval(timer))
}

function toBuffer (data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)
}

export const webSocketTransport = fp(plugin, { name: 'tokenwire-websocket', fastify: '5.x' })
