/**
 * POST /v1/realtime/client_secrets — what the SDK's `realtime.clientSecrets.create()` calls:
 * mints an ephemeral `ek_` key for a browser, bound to the caller's key (its tenant and limits),
 * optionally to one conversation (extension: `conversation_id`) and to session settings that
 * apply before `session.created`. Only a real gateway key may mint; the settings are validated
 * by the same codec as `session.update`.
 */
import fp from 'fastify-plugin'
import type { FastifyPluginAsync, FastifyReply } from 'fastify'
import { MAX_EPHEMERAL_KEY_CHARS } from '../auth/ephemeral-keys.js'
import type { KeyRing } from '../auth/key-ring.js'
import { gatewayError, httpErrorBody, type GatewayError } from '../errors.js'
import { newId } from '../ids.js'
import type { Codec } from '../protocol/codec.js'
import type { SessionPatch } from '../protocol/events.js'
import type { Backend } from '../store/conversation-store.js'
import { presentedKey } from './auth.js'

export interface ClientSecretsOptions {
  readonly keys: KeyRing
  readonly codec: Codec
  readonly backend: Backend
  /** Lifetime when the request names none (EPHEMERAL_KEY_TTL_S). */
  readonly defaultTtlS: number
  readonly defaultModel: string
}

interface Body {
  expires_after?: { anchor?: 'created_at', seconds?: number }
  session?: Record<string, unknown>
  conversation_id?: string
}

const bodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    expires_after: {
      type: 'object',
      additionalProperties: false,
      properties: { anchor: { const: 'created_at' }, seconds: { type: 'integer', minimum: 10, maximum: 7200 } }
    },
    session: { type: 'object' },
    conversation_id: { type: 'string', minLength: 1, maxLength: 128 }
  }
} as const

function send (reply: FastifyReply, err: GatewayError, param?: string): FastifyReply {
  return reply.code(err.statusCode).send(httpErrorBody(err, param))
}

const plugin: FastifyPluginAsync<ClientSecretsOptions> = async (app, { keys, codec, backend, defaultTtlS, defaultModel }) => {
  app.post<{ Body: Body }>('/v1/realtime/client_secrets', {
    schema: { body: bodySchema },
    bodyLimit: 64 * 1024,
    errorHandler: (err, _request, reply) => {
      const status = err.statusCode ?? 500
      send(reply, status >= 500
        ? gatewayError('GW_ERR_SERVER_INTERNAL', [], { cause: err })
        : Object.assign(gatewayError('GW_ERR_INVALID_REQUEST', [err.message]), { statusCode: status }))
    }
  }, async (request, reply) => {
    const key = presentedKey(request.headers)
    const principal = keys.authenticate(key)
    if (principal === undefined) return send(reply, gatewayError('GW_ERR_AUTH_UNAUTHORIZED'))
    if (principal.ephemeral !== undefined) return send(reply, gatewayError('GW_ERR_AUTH_EPHEMERAL_FORBIDDEN', ['mint another key']))

    const body = request.body ?? {}
    let session: SessionPatch | undefined
    if (body.session !== undefined) {
      if (body.session['type'] !== undefined && body.session['type'] !== 'realtime') {
        return send(reply, gatewayError('GW_ERR_INVALID_REQUEST', ['only realtime sessions are supported (no transcription sessions)']), 'session.type')
      }
      const decoded = codec.decode(JSON.stringify({ type: 'session.update', session: body.session }), false)
      if (!decoded.ok) return send(reply, decoded.error)
      if (decoded.event.type === 'session.update') session = decoded.event.session
    }
    const conversationId = body.conversation_id
    if (conversationId !== undefined && await backend.conversations.snapshot(conversationId, principal.tenant) === undefined) {
      return send(reply, gatewayError('GW_ERR_CONVERSATION_NOT_FOUND', [conversationId], { param: 'conversation_id' }))
    }
    const now = Math.floor(Date.now() / 1000)
    const expiresAt = now + (body.expires_after?.seconds ?? defaultTtlS)
    let value: string
    try {
      value = keys.ephemeral.mint({
        keyId: principal.keyId,
        expiresAt,
        ...(conversationId === undefined ? {} : { conversationId }),
        ...(session === undefined ? {} : { session })
      })
    } catch (err) {
      return send(reply, gatewayError('GW_ERR_INVALID_REQUEST', [`${(err as Error).message} (at most ${MAX_EPHEMERAL_KEY_CHARS} characters)`]), 'session')
    }
    request.log.info({ keyId: principal.keyId, expiresAt, bound: conversationId !== undefined }, 'ephemeral key minted')
    return reply.code(200).send({
      value,
      expires_at: expiresAt,
      session: {
        type: 'realtime',
        object: 'realtime.session',
        id: newId('sess'),
        model: session?.model ?? defaultModel,
        output_modalities: ['text'],
        ...session,
        expires_at: expiresAt,
        ...(conversationId === undefined ? {} : { conversation_id: conversationId })
      }
    })
  })
}

export const clientSecrets = fp(plugin, { name: 'tokenwire-client-secrets', fastify: '5.x' })
