/**
 * The Realtime endpoint: GET /v1/realtime upgraded to WebSocket. Authenticates at upgrade,
 * adapts the `ws` socket to a SessionSocket and hands every frame to a Session. No logic here.
 */
import websocket from '@fastify/websocket'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import type { Config } from '../config.js'
import { gatewayError, isGatewayError, type GatewayError } from '../errors.js'
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
import { connectMcp } from '../tools/mcp.js'
import { withTenant } from '../usage/with-tenant.js'
import type { Backend } from '../store/conversation-store.js'
import type { KeyRing, Principal } from '../auth/key-ring.js'
import { authenticate } from './auth.js'
import { sessionSocket } from './session-socket.js'

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
  /** The gateway's keys (and the ephemeral keys they mint). */
  readonly keys: KeyRing
}

/** A socket's slot among its key's MAX_SOCKETS_PER_KEY lives this long unless refreshed (a dead instance's slots free themselves). */
const SOCKET_SLOT_TTL_MS = 30_000

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller authenticated at upgrade (set in preValidation). */
    principal: Principal
    /** The socket slot held for the caller's key (MAX_SOCKETS_PER_KEY), if bounded. */
    socketSlot: string
  }
}

interface RealtimeQuery {
  model?: string
  /** Extension: attach to this stored conversation. */
  conversation_id?: string
  /** Extension: with conversation_id, deliver exactly the events after this event_id. */
  resume_after?: string
}

const plugin: FastifyPluginAsync<WebSocketTransportOptions> = async (app, { config, provider, backend, hubs, instanceId, sessions, tools, chains, sharedMcp, keys }) => {
  const codec = createCodec({ maxItemBytes: config.session.maxItemBytes, maxImageBytes: config.session.maxImageBytes })
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
    },
    // A client's broken frames (invalid UTF-8, unmasked, oversize) are its problem, not ours: ws
    // has already sent the close code; log them below error. Anything else is a gateway bug.
    errorHandler: (error, socket, request) => {
      const code = (error as { code?: unknown }).code
      if (typeof code === 'string' && code.startsWith('WS_ERR_')) request.log.debug({ code, message: error.message }, 'client broke the websocket protocol')
      else request.log.error({ err: error }, 'websocket handler failed')
      socket.terminate()
    }
  })
  // A refused upgrade (401, 403, 429…) answers on a socket the HTTP server does not track: close
  // it with the response, or it lingers and holds shutdown up.
  app.addHook('onSend', async (request, reply) => {
    if (request.headers.upgrade !== undefined && reply.statusCode !== 101) reply.header('connection', 'close')
  })
  app.addHook('onResponse', async (request, reply) => {
    if (request.headers.upgrade !== undefined && reply.statusCode !== 101) request.raw.socket.destroy()
  })
  app.decorateRequest('principal', null as unknown as Principal)
  app.decorateRequest('socketSlot', '')

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
      const refuse = (err: GatewayError) => reply.code(err.statusCode).send({ error: { type: err.type, code: err.wire, message: err.message } })
      const principal = authenticate(request.headers, keys)
      if (principal === undefined) return refuse(gatewayError('GW_ERR_AUTH_UNAUTHORIZED'))
      const bound = principal.ephemeral?.conversationId
      if (bound !== undefined && request.query.conversation_id !== undefined && request.query.conversation_id !== bound) {
        return refuse(gatewayError('GW_ERR_AUTH_EPHEMERAL_FORBIDDEN', ['open a conversation other than the one it is bound to']))
      }
      request.principal = principal
      const maxSockets = principal.limits.maxSockets
      if (maxSockets > 0) {
        const slot = newId('sock')
        try {
          if (!await backend.limits.holdSocket(principal.keyId, slot, maxSockets, SOCKET_SLOT_TTL_MS)) return refuse(gatewayError('GW_ERR_SOCKET_LIMIT', [maxSockets]))
        } catch (err) {
          request.log.warn({ err }, 'socket slot unavailable')
          return refuse(isGatewayError(err) ? err : gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: err }))
        }
        request.socketSlot = slot
      }
      return undefined
    }
  }, (socket, request) => {
    const { principal, socketSlot } = request
    if (socketSlot !== '') holdSocketSlot(socket, backend, principal.keyId, socketSlot, principal.limits.maxSockets, request.log)
    if (!sessions.hasRoom()) {
      socket.close(sessions.draining ? CloseCodes.SERVICE_RESTART : CloseCodes.TRY_AGAIN_LATER, 'no room for another session')
      return
    }
    // Deltas are small frames: send each at once, never held back for coalescing (Nagle).
    request.raw.socket.setNoDelay(true)
    const sessionId = newId('sess')
    const resumeAfter = request.query.resume_after
    const conversationId = principal.ephemeral?.conversationId ?? request.query.conversation_id
    const presets = principal.ephemeral?.session
    const session = new Session({
      id: sessionId,
      socket: sessionSocket(socket, request.raw.socket),
      codec,
      backend,
      hubs,
      responses,
      tools,
      chains,
      provider: withTenant(provider, principal.tenant, app),
      ...(conversationId === undefined ? {} : { attach: { conversationId, ...(resumeAfter === undefined ? {} : { resumeAfter }) } }),
      tenant: principal.tenant,
      model: presets?.model ?? request.query.model ?? config.upstream.defaultModel,
      ...(presets === undefined ? {} : { presets }),
      rateLimits: { store: backend.limits, keyId: principal.keyId, limits: principal.limits, outputReserveTokens: config.limits.outputReserveTokens },
      defaultModel: config.upstream.defaultModel,
      limits: { ...config.session, maxToolSteps: config.tools.maxSteps, mcpTimeoutMs: config.tools.mcpTimeoutMs },
      connectMcp,
      sharedMcp,
      log: request.log.child({ sessionId, keyId: principal.keyId })
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

/** Keeps a socket's slot among its key's sockets alive while it is open, and frees it on close. */
function holdSocketSlot (socket: WebSocket, backend: Backend, keyId: string, slot: string, max: number, log: { warn: (obj: object, msg: string) => void }): void {
  const timer = setInterval(() => {
    backend.limits.holdSocket(keyId, slot, max, SOCKET_SLOT_TTL_MS).catch((err: unknown) => log.warn({ err }, 'socket slot refresh failed'))
  }, SOCKET_SLOT_TTL_MS / 3).unref()
  socket.once('close', () => {
    clearInterval(timer)
    backend.limits.releaseSocket(keyId, slot).catch((err: unknown) => log.warn({ err }, 'socket slot release failed'))
  })
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
