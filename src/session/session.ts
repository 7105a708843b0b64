/**
 * One client connection: decodes its events, keeps its session config, runs its responses and
 * sends every server event through one backpressure-checked path. Framework-free: it sees a
 * SessionSocket, a ModelProvider and a ConversationStore, nothing else.
 */
import type { Log } from '../logger.js'
import type { SessionLimits } from '../config.js'
import { gatewayError, isGatewayError, type GatewayError } from '../errors.js'
import { idSequence, newId } from '../ids.js'
import { toChatMessages } from '../conversation/history.js'
import { CloseCodes } from '../protocol/close-codes.js'
import { encode, type Codec } from '../protocol/codec.js'
import type { ClientEvent, FunctionTool, GatewaySession, Item, ItemInput, OutgoingEvent, SessionPatch, ToolChoice } from '../protocol/events.js'
import type { ChatTool, ChatToolChoice, ModelProvider, ModelRequest } from '../providers/provider.js'
import type { ConversationStore } from '../store/conversation-store.js'
import { ResponseRun, type ItemSink } from './response-run.js'
import type { SessionSocket } from './socket.js'

export interface SessionOptions {
  readonly id: string
  readonly socket: SessionSocket
  readonly codec: Codec
  readonly store: ConversationStore
  readonly provider: ModelProvider
  readonly tenant: string
  /** The model the client asked for: the `model` query parameter, else DEFAULT_MODEL. */
  readonly model: string
  /** Stands in for realtime-only model names (gpt-realtime…), which no Chat upstream serves. */
  readonly defaultModel: string
  readonly limits: SessionLimits
  readonly log: Log
}

type EventOf<T extends ClientEvent['type']> = Extract<ClientEvent, { type: T }>

/** A session lives for 1 hour in the Realtime API; we report the same horizon. */
const SESSION_HORIZON_S = 3600

export class Session {
  readonly id: string
  readonly #options: SessionOptions
  readonly #nextEventId = idSequence('event')
  readonly #responses = new Map<string, ResponseRun>()
  readonly #openedAt = Date.now()
  #log: Log
  #config: GatewaySession
  #conversationId = ''
  #queue: Promise<void>
  #turns = 0
  #closed = false

  constructor (options: SessionOptions) {
    this.id = options.id
    this.#options = options
    this.#log = options.log
    this.#config = {
      type: 'realtime',
      object: 'realtime.session',
      id: options.id,
      model: options.model,
      output_modalities: ['text'],
      instructions: '',
      tools: [],
      tool_choice: 'auto',
      max_output_tokens: 'inf',
      tracing: null,
      truncation: 'auto',
      prompt: null,
      include: [],
      conversation_id: '',
      expires_at: Math.floor(this.#openedAt / 1000) + SESSION_HORIZON_S
    }
    this.#queue = this.#open()
  }

  /** The conversation this session is attached to ('' until opened). */
  get conversationId (): string {
    return this.#conversationId
  }

  /**
   * Accepts one frame. Events are decoded at once and handled strictly in arrival order;
   * a response runs in the background so `response.cancel` can reach it.
   */
  receive (data: string | Buffer, isBinary: boolean): void {
    if (this.#closed) return
    const decoded = this.#options.codec.decode(data, isBinary)
    this.#queue = this.#queue.then(async () => {
      if (this.#closed) return
      if (!decoded.ok) return this.#sendError(decoded.error, decoded.eventId)
      try {
        await this.#handle(decoded.event)
      } catch (err) {
        this.#sendError(this.#asGatewayError(err), decoded.event.event_id)
      }
    })
  }

  /** The connection is gone: stop every response (and its upstream request). */
  closed (code: number): void {
    if (this.#closed) return
    this.#closed = true
    for (const run of this.#responses.values()) run.abort(false)
    this.#log.info({ code, durationMs: Date.now() - this.#openedAt, turns: this.#turns }, 'session closed')
  }

  /** Ends the session from the server side, e.g. on shutdown (1012). */
  close (code: number, reason: string): void {
    this.#options.socket.close(code, reason)
    this.closed(code)
  }

  async #open (): Promise<void> {
    try {
      this.#conversationId = await this.#options.store.create(this.#options.tenant)
    } catch (err) {
      this.#log.error({ err }, 'conversation create failed')
      this.close(CloseCodes.INTERNAL_ERROR, 'conversation store unavailable')
      return
    }
    this.#config.conversation_id = this.#conversationId
    this.#log = this.#log.child({ conversationId: this.#conversationId })
    this.#log.info({ model: this.#config.model }, 'session opened')
    this.#emit({ type: 'session.created', session: this.#config })
  }

  async #handle (event: ClientEvent): Promise<void> {
    switch (event.type) {
      case 'session.update': return this.#updateSession(event)
      case 'conversation.item.create': return this.#createItem(event)
      case 'conversation.item.retrieve': return this.#retrieveItem(event)
      case 'conversation.item.delete': return this.#deleteItem(event)
      case 'response.create': return this.#createResponse(event)
      case 'response.cancel': return this.#cancelResponse(event)
    }
  }

  #updateSession (event: EventOf<'session.update'>): void {
    const patch: SessionPatch = event.session
    const notices: string[] = []
    const next: GatewaySession = { ...this.#config }
    for (const [key, value] of Object.entries(patch)) {
      if (value === undefined || key === 'type' || key === 'object' || key === 'id' || key === 'expires_at' || key === 'conversation_id') continue
      Object.assign(next, { [key]: value })
    }
    if (patch.output_modalities !== undefined && patch.output_modalities.some((m) => m !== 'text')) {
      notices.push('output_modalities coerced to ["text"]: this gateway streams text only')
    }
    next.output_modalities = ['text']
    this.#config = next
    this.#emit({ type: 'session.updated', session: notices.length > 0 ? { ...next, gateway_notices: notices } : next })
  }

  async #createItem (event: EventOf<'conversation.item.create'>): Promise<void> {
    const item = toItem(event.item, newId('item'))
    const store = this.#options.store
    if (item.type === 'function_call_output') {
      const items = await this.#items()
      if (!items.some((i) => i.type === 'function_call' && i.call_id === item.call_id)) {
        throw gatewayError('GW_ERR_TOOL_CALL_NOT_FOUND', [item.call_id], { param: 'item.call_id' })
      }
    }
    const previous = event.previous_item_id === 'root' ? null : event.previous_item_id ?? undefined
    const previousItemId = await store.insert(this.#conversationId, item, previous)
    this.#emit({ type: 'conversation.item.added', previous_item_id: previousItemId, item })
    this.#emit({ type: 'conversation.item.done', previous_item_id: previousItemId, item })
  }

  async #retrieveItem (event: EventOf<'conversation.item.retrieve'>): Promise<void> {
    const item = (await this.#items()).find((i) => i.id === event.item_id)
    if (item === undefined) throw gatewayError('GW_ERR_ITEM_NOT_FOUND', [event.item_id], { param: 'item_id' })
    this.#emit({ type: 'conversation.item.retrieved', item })
  }

  async #deleteItem (event: EventOf<'conversation.item.delete'>): Promise<void> {
    const deleted = await this.#options.store.delete(this.#conversationId, event.item_id)
    if (!deleted) throw gatewayError('GW_ERR_ITEM_NOT_FOUND', [event.item_id], { param: 'item_id' })
    this.#emit({ type: 'conversation.item.deleted', item_id: event.item_id })
  }

  async #createResponse (event: EventOf<'response.create'>): Promise<void> {
    const params = event.response ?? {}
    const inConversation = params.conversation !== 'none'
    const limits = this.#options.limits
    if (inConversation) {
      const active = [...this.#responses.values()].find((run) => run.inConversation)
      if (active !== undefined) throw gatewayError('GW_ERR_RESPONSE_ACTIVE', [active.id])
    }
    if (this.#responses.size >= limits.maxConcurrentResponses) throw gatewayError('GW_ERR_RESPONSE_LIMIT', [limits.maxConcurrentResponses])

    const context = params.input === undefined
      ? await this.#items()
      : params.input.map((input) => toItem(input, newId('item')))
    const config = this.#config
    const tools = params.tools ?? config.tools?.filter((tool): tool is FunctionTool => tool.type === 'function') ?? []
    const toolChoice = params.tool_choice ?? config.tool_choice
    const maxOutputTokens = params.max_output_tokens ?? config.max_output_tokens ?? 'inf'
    const temperature = params.temperature ?? config.temperature
    const parallel = params.parallel_tool_calls ?? config.parallel_tool_calls
    const request: ModelRequest = {
      model: this.#upstreamModel(params.model ?? config.model),
      messages: toChatMessages(context, params.instructions ?? config.instructions),
      ...(tools.length > 0 ? { tools: tools.map(toChatTool) } : {}),
      ...(toolChoice === undefined ? {} : { toolChoice: toChatToolChoice(toolChoice) }),
      ...(parallel === undefined ? {} : { parallelToolCalls: parallel }),
      ...(temperature === undefined ? {} : { temperature }),
      ...(maxOutputTokens === 'inf' ? {} : { maxOutputTokens })
    }

    const id = newId('resp')
    const log = this.#log.child({ responseId: id })
    const run = new ResponseRun({
      id,
      provider: this.#options.provider,
      request,
      emit: (e) => this.#emit(e),
      newItemId: () => newId('item'),
      items: inConversation ? this.#itemSink() : null,
      conversationId: inConversation ? this.#conversationId : null,
      metadata: params.metadata ?? null,
      maxOutputTokens,
      onError: (err) => log.warn({ err }, 'response failed upstream')
    })
    this.#responses.set(id, run)
    this.#turns++
    run.run()
      .then((response) => log.debug({ status: response.status }, 'response done'))
      .catch((err: unknown) => log.error({ err }, 'response run crashed'))
      .finally(() => this.#responses.delete(id))
  }

  #cancelResponse (event: EventOf<'response.cancel'>): void {
    const run = event.response_id === undefined
      ? [...this.#responses.values()].find((r) => r.inConversation) ?? [...this.#responses.values()].at(-1)
      : this.#responses.get(event.response_id)
    if (run === undefined) throw gatewayError('GW_ERR_RESPONSE_NOT_ACTIVE', [], event.response_id === undefined ? {} : { param: 'response_id' })
    run.abort(true)
  }

  #upstreamModel (model: string): string {
    return /realtime|^gpt-audio/.test(model) ? this.#options.defaultModel : model
  }

  #itemSink (): ItemSink {
    const store = this.#options.store
    const conversationId = this.#conversationId
    return {
      added: async (item) => store.insert(conversationId, item),
      done: async (item) => { await store.replace(conversationId, item) }
    }
  }

  async #items (): Promise<Item[]> {
    const items = await this.#options.store.items(this.#conversationId, this.#options.tenant)
    if (items === undefined) throw gatewayError('GW_ERR_CONVERSATION_NOT_FOUND', [this.#conversationId])
    return items
  }

  /** The single exit for server events: stamps event_id, enforces MAX_PENDING_BYTES. */
  #emit (event: OutgoingEvent): void {
    const socket = this.#options.socket
    if (!socket.isOpen) return
    const frame = encode({ event_id: this.#nextEventId(), ...event })
    if (socket.bufferedAmount + frame.length > this.#options.limits.maxPendingBytes) {
      this.#log.warn({ bufferedAmount: socket.bufferedAmount }, 'slow consumer')
      this.close(CloseCodes.SLOW_CONSUMER, 'client reads too slowly (MAX_PENDING_BYTES)')
      return
    }
    socket.send(frame)
  }

  #sendError (error: GatewayError, eventId: string | undefined): void {
    if (error.type === 'server_error') this.#log.error({ err: error.cause ?? error }, 'event failed')
    else this.#log.debug({ code: error.code }, 'event rejected')
    this.#emit({
      type: 'error',
      error: { type: error.type, code: error.wire, message: error.message, param: error.param ?? null, event_id: eventId ?? null }
    })
  }

  #asGatewayError (err: unknown): GatewayError {
    return isGatewayError(err) ? err : gatewayError('GW_ERR_SERVER_INTERNAL', [], { cause: err })
  }
}

/** A client item as stored: id given or generated, `object` and `status` set, parts normalised. */
function toItem (input: ItemInput, generatedId: string): Item {
  const meta = { id: input.id ?? generatedId, object: 'realtime.item' as const, status: input.status ?? 'completed' }
  switch (input.type) {
    case 'function_call':
      return { ...meta, type: 'function_call', call_id: input.call_id, name: input.name, arguments: input.arguments }
    case 'function_call_output':
      return { ...meta, type: 'function_call_output', call_id: input.call_id, output: input.output }
    case 'message':
      switch (input.role) {
        case 'assistant':
          return { ...meta, type: 'message', role: 'assistant', content: input.content.map((p) => ({ type: 'output_text' as const, text: p.text ?? '' })) }
        case 'system':
          return { ...meta, type: 'message', role: 'system', content: input.content.map((p) => ({ type: 'input_text' as const, text: p.text ?? '' })) }
        case 'user':
          return {
            ...meta,
            type: 'message',
            role: 'user',
            content: input.content.map((p) => p.type === 'input_image'
              ? { type: 'input_image' as const, image_url: p.image_url ?? '', ...(p.detail === undefined ? {} : { detail: p.detail }) }
              : { type: 'input_text' as const, text: p.text ?? '' })
          }
      }
  }
}

function toChatTool (tool: FunctionTool): ChatTool {
  return {
    name: tool.name,
    ...(tool.description === undefined ? {} : { description: tool.description }),
    ...(tool.parameters === undefined ? {} : { parameters: tool.parameters }),
    ...(tool.strict === undefined ? {} : { strict: tool.strict })
  }
}

function toChatToolChoice (choice: ToolChoice | NonNullable<GatewaySession['tool_choice']>): ChatToolChoice {
  if (typeof choice === 'string') return choice === 'none' || choice === 'required' ? choice : 'auto'
  return 'name' in choice && typeof choice.name === 'string' ? { name: choice.name } : 'auto'
}
