/**
 * One client connection: decodes its events, keeps its session config, attaches to a
 * conversation (new, or stored on any instance, optionally resuming from an event cursor),
 * runs its responses under the conversation's lease and sends every server event through one
 * backpressure-checked path. Framework-free: it sees a SessionSocket, a ModelProvider and the
 * store interfaces, nothing else.
 */
import { randomBytes } from 'node:crypto'
import type { ChainDefinition } from '../chains/chains-file.js'
import { renderTemplate } from '../chains/template.js'
import type { SessionLimits } from '../config.js'
import type { ConversationHubs, HubMember } from '../conversation/hub.js'
import { EventCursor } from '../conversation/event-cursor.js'
import { toChatMessages } from '../conversation/history.js'
import { gatewayError, isGatewayError, type GatewayError } from '../errors.js'
import { idSequence, newId } from '../ids.js'
import type { Log } from '../logger.js'
import { CloseCodes } from '../protocol/close-codes.js'
import { encode, type Codec } from '../protocol/codec.js'
import type { ClientEvent, FunctionTool, GatewaySession, Item, McpTool, OutgoingEvent, ResponseResource, SessionPatch } from '../protocol/events.js'
import type { ChatTool, ModelProvider, ModelRequest } from '../providers/provider.js'
import { PREVIOUS_ITEM_MARKER, parseEventId, type Backend, type ItemOp, type Snapshot } from '../store/conversation-store.js'
import type { BucketLimits, LimitStatus, RateLimitStore } from '../limits/rate-limits.js'
import type { ConversationResponses } from './conversation-responses.js'
import type { McpConnection, McpServerOptions } from '../tools/mcp.js'
import { functionCalls, latestUserText, redactTool, responseText, toChatTool, toChatToolChoice, toItem, userItem, type CallItem } from './items.js'
import { ResponseRun, type ResponseSink } from './response-run.js'
import { SessionMcp } from './session-mcp.js'
import type { SessionSocket } from './socket.js'
import { estimateInputTokens } from './usage-estimate.js'

export interface ConversationLimits {
  /** How long a response's lease lives without a refresh, in ms (LEASE_TTL_MS). */
  readonly leaseTtlMs: number
  /** What a reply does when the socket that asked for it goes away. */
  readonly onDisconnect: 'continue' | 'cancel'
}

export interface SessionOptions {
  readonly id: string
  readonly socket: SessionSocket
  readonly codec: Codec
  readonly backend: Backend
  readonly hubs: ConversationHubs
  readonly responses: ConversationResponses
  /** Server-side tools: offered to the model in conversation responses and run by the gateway. */
  readonly tools: SessionTools
  /** Prompt chains by name (CHAINS_FILE). */
  readonly chains: ReadonlyMap<string, ChainDefinition>
  /** The gateway's own MCP servers (MCP_SERVERS), shared by every session. */
  readonly sharedMcp?: SessionMcp
  /** Opens an MCP server named by a session's `mcp` tool (tools/mcp.ts). */
  readonly connectMcp: (options: McpServerOptions) => Promise<McpConnection>
  readonly provider: ModelProvider
  readonly tenant: string
  /** The model the client asked for: the `model` query parameter, else DEFAULT_MODEL. */
  readonly model: string
  /** Stands in for realtime-only model names (gpt-realtime…), which no Chat upstream serves. */
  readonly defaultModel: string
  readonly limits: SessionLimits & ConversationLimits & { readonly maxToolSteps: number, readonly mcpTimeoutMs: number }
  readonly log: Log
  /** Attach to a stored conversation instead of creating one; resume after an event cursor. */
  readonly attach?: { readonly conversationId: string, readonly resumeAfter?: string }
  /** Session settings applied before `session.created` (an ephemeral key's). */
  readonly presets?: SessionPatch
  /** The key's rate limits; absent or all 0: none. */
  readonly rateLimits?: SessionRateLimits
}

/** What a session needs to charge its key's rate limits. */
export interface SessionRateLimits {
  readonly store: RateLimitStore
  /** The key charged (never the key itself). */
  readonly keyId: string
  readonly limits: BucketLimits
  /** Output tokens reserved for a reply with max_output_tokens `inf` (RATE_LIMIT_OUTPUT_RESERVE_TOKENS). */
  readonly outputReserveTokens: number
}

/** A turn's claim on the key's buckets: usage is added as responses end, settled when the turn ends. */
interface Meter {
  add (response: ResponseResource): void
  settle (): void
}

/** What a session needs of the gateway's server-side tools (tools/registry.ts provides it). */
export interface SessionTools {
  /** Their names, which client-declared tools may not reuse. */
  readonly names: ReadonlySet<string>
  /** Their definitions as the upstream gets them. */
  readonly chatTools: readonly ChatTool[]
  has (name: string): boolean
  /** Validates and runs one call; never rejects (failures are outputs the model sees). */
  call (name: string, argumentsJson: string, context: { signal: AbortSignal, conversationId: string, tenant: string }): Promise<{ ok: boolean, output: string }>
}

type EventOf<T extends ClientEvent['type']> = Extract<ClientEvent, { type: T }>
type ResponseParamsOf = NonNullable<EventOf<'response.create'>['response']>

/** A session lives for 1 hour in the Realtime API; we report the same horizon. */
const SESSION_HORIZON_S = 3600
/** `previous_item_id` value the store fills in atomically. */
const PREVIOUS_ITEM = JSON.parse(PREVIOUS_ITEM_MARKER) as string
/** Recognises the type of a stamped log event without parsing it. */
const RESPONSE_BOUNDARY = /^\{"event_id":"[^"]+","type":"response\.(created|done)"/

export class Session {
  readonly id: string
  readonly #options: SessionOptions
  readonly #nextEventId = idSequence('event')
  /** Out-of-band responses of this socket (in-conversation ones live in the hub). */
  readonly #localRuns = new Map<string, ResponseRun>()
  /** In-conversation responses this socket started (for ON_DISCONNECT=cancel). */
  readonly #started = new Set<string>()
  readonly #openedAt = Date.now()
  readonly #cursor: EventCursor
  readonly #member: HubMember
  #log: Log
  #config: GatewaySession
  #conversationId = ''
  #joined = false
  #queue: Promise<void>
  #turns = 0
  #closed = false
  /** Client events received and not handled yet (MAX_PENDING_EVENTS). */
  #pending = 0
  /**
   * Closed by the server (shutdown): events already received are still handled, so a
   * `response.create` the client sent just before its 1012 is not lost (it goes to the log).
   */
  #finishQueued = false
  /** MCP servers this session's `mcp` tools named (and the gateway's own, behind them). */
  readonly #mcp: SessionMcp
  /** Batches shown to this socket before the store took them (degraded mode). */
  readonly #shownUncommitted = new Set<string>()
  /** Fires when a response seen on the feed goes quiet: its generator may have died. */
  #watchdog: NodeJS.Timeout | undefined

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
    if (options.presets !== undefined) this.#config = this.#patched(options.presets).session
    this.#mcp = new SessionMcp(options.sharedMcp)
    this.#cursor = new EventCursor({
      send: (event) => this.#deliver(event),
      readLog: async (afterSeq) => this.#options.backend.conversations.readLog(this.#conversationId, afterSeq),
      onFillError: (err) => this.#sendError(this.#asGatewayError(err), undefined)
    })
    this.#member = {
      deliver: (firstSeq, events) => this.#cursor.push(firstSeq, events),
      resync: () => this.#cursor.resync(),
      deliverUncommitted: (events, batchId) => {
        this.#shownUncommitted.add(batchId)
        for (const event of events) this.#sendFrame(`{"event_id":"${this.#nextEventId()}",${event.slice(1)}`)
      },
      hold: () => this.#cursor.hold(),
      // Skip the log's copy of a batch only if this socket was shown it uncommitted.
      release: (skip) => this.#cursor.release(skip !== undefined && this.#shownUncommitted.delete(skip.batchId) ? skip : undefined)
    }
    this.#queue = this.#open().catch((err: unknown) => {
      this.#log.error({ err }, 'session open failed')
      this.#sendError(gatewayError('GW_ERR_STORE_UNAVAILABLE', [], { cause: err }), undefined)
      this.close(CloseCodes.INTERNAL_ERROR, 'conversation store unavailable; retry')
    })
  }

  /**
   * Accepts one frame. Events are decoded at once and handled strictly in arrival order;
   * a response runs in the background so `response.cancel` can reach it.
   */
  receive (data: string | Buffer, isBinary: boolean): void {
    if (this.#closed) return
    const decoded = this.#options.codec.decode(data, isBinary)
    const limit = this.#options.limits.maxPendingEvents
    if (this.#pending >= limit) {
      // A flood: refuse at once instead of queueing without bound (nothing is lost silently).
      this.#sendError(gatewayError('GW_ERR_PROTOCOL_TOO_MANY_PENDING', [limit]), decoded.ok ? decoded.event.event_id : decoded.eventId)
      return
    }
    this.#pending++
    this.#queue = this.#queue.then(async () => {
      if (this.#closed && !this.#finishQueued) return
      if (!decoded.ok) return this.#sendError(decoded.error, decoded.eventId)
      try {
        await this.#handle(decoded.event)
      } catch (err) {
        this.#sendError(this.#asGatewayError(err), decoded.event.event_id)
      }
    }).finally(() => { this.#pending-- })
  }

  /** The connection is gone. Replies keep generating for other sockets unless ON_DISCONNECT=cancel. */
  closed (code: number): void {
    if (this.#closed) return
    this.#closed = true
    clearTimeout(this.#watchdog)
    for (const run of this.#localRuns.values()) run.abort(false)
    if (this.#options.limits.onDisconnect === 'cancel') {
      for (const responseId of this.#started) this.#options.hubs.localRun(this.#conversationId, responseId)?.abort(false)
    }
    if (this.#joined) this.#options.hubs.leave(this.#conversationId, this.#member)
    this.#mcp.closeAll((err) => this.#log.warn({ err }, 'mcp close failed'))
    this.#log.info({ code, durationMs: Date.now() - this.#openedAt, turns: this.#turns }, 'session closed')
  }

  /** Ends the session from the server side, e.g. on shutdown (1012). */
  close (code: number, reason: string): void {
    if (code === CloseCodes.SERVICE_RESTART) this.#finishQueued = true
    this.#options.socket.close(code, reason)
    this.closed(code)
  }

  /** Resolves once every event received so far has been handled (shutdown waits for it). */
  async settled (): Promise<void> {
    await this.#queue
  }

  async #open (): Promise<void> {
    const { backend, hubs, tenant, attach } = this.#options
    if (attach === undefined) {
      this.#conversationId = newId('conv')
      await backend.conversations.create(this.#conversationId, tenant, randomBytes(5).toString('hex'))
    } else {
      this.#conversationId = attach.conversationId
    }
    // Subscribe before reading: events after the snapshot wait in the cursor, none fall between.
    await hubs.join(this.#conversationId, this.#member)
    this.#joined = true
    if (this.#closed) return hubs.leave(this.#conversationId, this.#member)
    this.#config.conversation_id = this.#conversationId
    this.#log = this.#log.child({ conversationId: this.#conversationId })

    if (attach === undefined) {
      this.#log.info({ model: this.#config.model }, 'session opened')
      this.#emit({ type: 'session.created', session: this.#config })
      this.#cursor.start(0)
      return
    }
    const snapshot = await backend.conversations.snapshot(this.#conversationId, tenant)
    if (snapshot === undefined) {
      this.#sendError(gatewayError('GW_ERR_CONVERSATION_NOT_FOUND', [attach.conversationId], { param: 'conversation_id' }), undefined)
      this.close(CloseCodes.CONVERSATION_NOT_FOUND, 'conversation not found')
      return
    }
    this.#log.info({ model: this.#config.model, resume: attach.resumeAfter !== undefined }, 'session attached')
    this.#emit({ type: 'session.created', session: this.#config })
    this.#replay(snapshot, attach.resumeAfter)
    if (snapshot.active !== undefined && !snapshot.leased) this.#options.responses.recoverOrphan(this.#conversationId, this.#log)
  }

  /** Brings an attaching client up to date: from its cursor, or the items and any reply in flight. */
  #replay (snapshot: Snapshot, resumeAfter: string | undefined): void {
    if (resumeAfter !== undefined) {
      const cursor = parseEventId(resumeAfter)
      if (cursor !== undefined && cursor.epoch === snapshot.epoch && cursor.seq >= snapshot.firstSeq - 1 && cursor.seq <= snapshot.lastSeq) {
        this.#cursor.start(cursor.seq)
        return
      }
      this.#sendError(gatewayError('GW_ERR_RESUME_CURSOR_EXPIRED', [JSON.stringify(resumeAfter.slice(0, 64))], { param: 'resume_after' }), undefined)
    }
    const inFlight = new Set(snapshot.active?.itemIds ?? [])
    let previous: string | null = null
    for (const item of snapshot.items) {
      if (!inFlight.has(item.id)) this.#emit({ type: 'conversation.item.done', previous_item_id: previous, item })
      previous = item.id
    }
    // A reply being generated continues from its response.created, then its live tail.
    this.#cursor.start(snapshot.active === undefined ? snapshot.lastSeq : Math.max(snapshot.active.seq - 1, snapshot.firstSeq - 1))
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

  async #updateSession (event: EventOf<'session.update'>): Promise<void> {
    const patch: SessionPatch = event.session
    const clash = patch.tools?.findIndex((tool) => tool.type === 'function' && this.#options.tools.has(tool.name)) ?? -1
    const clashing = patch.tools?.[clash]
    if (clashing?.type === 'function') {
      throw gatewayError('GW_ERR_PROTOCOL_INVALID_EVENT', ['session.update', `tool name ${JSON.stringify(clashing.name)} is taken by a server-side tool`], { param: `session.tools[${clash}].name` })
    }
    const { session: next, notices } = this.#patched(patch)
    this.#config = next
    const shown = { ...next, ...(next.tools === undefined ? {} : { tools: next.tools.map(redactTool) }) }
    this.#emit({ type: 'session.updated', session: notices.length > 0 ? { ...shown, gateway_notices: notices } : shown })
    for (const tool of patch.tools ?? []) {
      if (tool.type === 'mcp') await this.#listMcpTools(tool, event.event_id)
    }
  }

  /** The session config with `patch` applied (text-only coerced), and what was changed and why. */
  #patched (patch: SessionPatch): { session: GatewaySession, notices: string[] } {
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
    return { session: next, notices }
  }

  /**
   * Connects to the MCP server a session names and lists its tools, as the GA Realtime API does:
   * an `mcp_list_tools` item joins the conversation, with mcp_list_tools.in_progress and then
   * .completed (or .failed and an error). Its tools are then offered to the model.
   */
  async #listMcpTools (tool: McpTool, eventId: string | undefined): Promise<void> {
    const label = tool.server_label
    await this.#mcp.drop(label)
    const item: Item = { id: newId('item'), object: 'realtime.item', type: 'mcp_list_tools', status: 'in_progress', server_label: label, tools: [] }
    await this.#append([
      { type: 'conversation.item.added', previous_item_id: PREVIOUS_ITEM, item },
      { type: 'mcp_list_tools.in_progress', item_id: item.id }
    ], { op: 'insert', item })
    const allowed = Array.isArray(tool.allowed_tools) ? tool.allowed_tools : tool.allowed_tools?.tool_names
    const headers = { ...tool.headers, ...(tool.authorization === undefined ? {} : { authorization: `Bearer ${tool.authorization}` }) }
    try {
      const connection = await this.#options.connectMcp({
        serverLabel: label,
        serverUrl: tool.server_url,
        headers,
        ...(allowed === undefined ? {} : { allowedTools: allowed }),
        timeoutMs: this.#options.limits.mcpTimeoutMs
      })
      this.#mcp.add(connection)
      const done: Item = { ...item, status: 'completed', tools: connection.tools.map((t) => ({ name: t.name, description: t.description ?? null, input_schema: t.inputSchema })) }
      await this.#append([{ type: 'mcp_list_tools.completed', item_id: item.id }, { type: 'conversation.item.done', item: done }], { op: 'replace', item: done })
    } catch (err) {
      const failed: Item = { ...item, status: 'incomplete' }
      await this.#append([{ type: 'mcp_list_tools.failed', item_id: item.id }, { type: 'conversation.item.done', item: failed }], { op: 'replace', item: failed })
      this.#sendError(gatewayError('GW_ERR_MCP_UNAVAILABLE', [label], { cause: err, param: 'session.tools' }), eventId)
    }
  }

  async #createItem (event: EventOf<'conversation.item.create'>): Promise<void> {
    const item = toItem(event.item, newId('item'))
    if (item.type === 'function_call_output') {
      const items = await this.#items()
      if (!items.some((i) => i.type === 'function_call' && i.call_id === item.call_id)) {
        throw gatewayError('GW_ERR_TOOL_CALL_NOT_FOUND', [item.call_id], { param: 'item.call_id' })
      }
    }
    const after = event.previous_item_id === 'root' ? null : event.previous_item_id ?? undefined
    await this.#append([
      { type: 'conversation.item.added', previous_item_id: PREVIOUS_ITEM, item },
      { type: 'conversation.item.done', previous_item_id: PREVIOUS_ITEM, item }
    ], { op: 'insert', item, ...(after === undefined ? {} : { after }) })
  }

  async #retrieveItem (event: EventOf<'conversation.item.retrieve'>): Promise<void> {
    const item = (await this.#items()).find((i) => i.id === event.item_id)
    if (item === undefined) throw gatewayError('GW_ERR_ITEM_NOT_FOUND', [event.item_id], { param: 'item_id' })
    this.#emit({ type: 'conversation.item.retrieved', item })
  }

  async #deleteItem (event: EventOf<'conversation.item.delete'>): Promise<void> {
    await this.#append([{ type: 'conversation.item.deleted', item_id: event.item_id }], { op: 'delete', itemId: event.item_id })
  }

  /** A client's change to the conversation: one unfenced append, delivered here at once. */
  async #append (events: OutgoingEvent[], op: ItemOp): Promise<void> {
    const result = await this.#options.backend.conversations.append(this.#conversationId, {
      id: newId('append'),
      events: events.map((e) => JSON.stringify(e)),
      ops: [op]
    })
    this.#options.hubs.deliverLocal(this.#conversationId, result)
  }

  async #createResponse (event: EventOf<'response.create'>): Promise<void> {
    const params = event.response ?? {}
    const chain = params.metadata?.['chain']
    if (chain !== undefined) return this.#runChain(chain)
    const limits = this.#options.limits
    if (this.#localRuns.size + this.#started.size >= limits.maxConcurrentResponses) throw gatewayError('GW_ERR_RESPONSE_LIMIT', [limits.maxConcurrentResponses])
    const id = newId('resp')
    const log = this.#log.child({ responseId: id })
    // The history comes with the lease, in the same round trip (unless the request brings its own input).
    const slot = params.conversation === 'none' ? undefined : await this.#options.responses.reserve(this.#conversationId, id, log, { items: params.input === undefined })
    try {
      const context = params.input === undefined ? slot?.items ?? await this.#items() : params.input.map((input) => toItem(input, newId('item')))
      // Out-of-band responses go to this socket only; the others through the conversation's log.
      const sink: ResponseSink = slot?.sink ?? { emit: (e) => this.#emit(e), touch: () => {} }
      const request = this.#request(params, context, slot !== undefined)
      const maxOutput = params.max_output_tokens ?? this.#config.max_output_tokens ?? 'inf'
      const meter = await this.#takeRateLimit(request, maxOutput)
      const run = this.#newRun(id, params, context, sink, slot === undefined ? 0 : 1, log, meter)
      this.#turns++
      if (slot === undefined) {
        this.#localRuns.set(id, run)
        run.run().finally(() => {
          this.#localRuns.delete(id)
          meter?.settle()
        }).catch((err: unknown) => log.error({ err }, 'response run crashed'))
        return
      }
      this.#started.add(id)
      let step = 1
      await slot.start(run, log, () => {
        this.#started.delete(id)
        meter?.settle()
      }, async (response, signal) => {
        if (!await this.#runServerTools(response, sink, signal)) return undefined
        await slot.flush() // the follow-up reads the history back: the outputs must be in it
        step++
        const followUp = newId('resp')
        return this.#newRun(followUp, params, await this.#items(), sink, step, this.#log.child({ responseId: followUp }), meter)
      })
    } catch (err) {
      await slot?.abandon()
      throw err
    }
  }

  /**
   * One response of a turn. `step`: its place among the turn's model↔tool rounds (0: out of band,
   * where server-side tools are not offered).
   */
  #newRun (id: string, params: ResponseParamsOf, context: Item[], sink: ResponseSink, step: number, log: Log, meter: Meter | undefined): ResponseRun {
    const tools = this.#options.tools
    return new ResponseRun({
      errorEvent: this.#options.limits.failedResponseErrorEvent,
      ...(meter === undefined ? {} : { onDone: (response) => meter.add(response) }),
      id,
      provider: this.#options.provider,
      request: this.#request(params, context, step > 0),
      sink,
      newItemId: () => newId('item'),
      conversationId: step === 0 ? null : this.#conversationId,
      metadata: params.metadata ?? null,
      maxOutputTokens: params.max_output_tokens ?? this.#config.max_output_tokens ?? 'inf',
      onError: (err) => log.warn({ err }, 'response failed upstream'),
      ...(step === 0 ? {} : { toolSteps: { reached: step >= this.#options.limits.maxToolSteps, max: this.#options.limits.maxToolSteps, serverTools: tools.names }, mcp: this.#mcp.runner() })
    })
  }

  /**
   * Runs a prompt chain on the latest user message, as one turn under the conversation's lease:
   * each step is a response of its own (`metadata: {chain, step}`); the intermediate ones are
   * out-of-band (logged and fanned out, not in the conversation), the last one's answer joins the
   * conversation. A step's server-side tools run inside the step. Cancelling stops the chain.
   */
  async #runChain (name: string): Promise<void> {
    const chain = this.#options.chains.get(name)
    if (chain === undefined) throw gatewayError('GW_ERR_PROTOCOL_INVALID_EVENT', ['response.create', `no chain named ${JSON.stringify(name.slice(0, 64))}`], { param: 'response.metadata.chain' })
    const input = latestUserText(await this.#items())
    if (input === undefined) throw gatewayError('GW_ERR_PROTOCOL_INVALID_EVENT', ['response.create', 'a chain runs on the latest user message, and there is none'], { param: 'response.metadata.chain' })
    const limits = this.#options.limits
    if (this.#localRuns.size + this.#started.size >= limits.maxConcurrentResponses) throw gatewayError('GW_ERR_RESPONSE_LIMIT', [limits.maxConcurrentResponses])
    const firstId = newId('resp')
    const log = this.#log.child({ responseId: firstId, chain: name })
    const slot = await this.#options.responses.reserve(this.#conversationId, firstId, log)
    let meter: Meter | undefined
    const outputs: Record<string, string> = {}
    let index = 0
    let round = 1
    let context: Item[] = []
    const stepRun = (id: string): ResponseRun => {
      const step = chain.steps[index]
      if (step === undefined) throw new Error('chain step out of range')
      const last = index === chain.steps.length - 1
      const tools = this.#options.tools.chatTools.filter((tool) => step.tools.includes(tool.name))
      return new ResponseRun({
        errorEvent: limits.failedResponseErrorEvent,
        onDone: (response) => meter?.add(response),
        id,
        provider: this.#options.provider,
        request: {
          model: this.#upstreamModel(step.model ?? this.#config.model),
          messages: toChatMessages(context, step.instructions),
          ...(tools.length > 0 ? { tools: [...tools] } : {}),
          ...(this.#config.temperature === undefined ? {} : { temperature: this.#config.temperature })
        },
        sink: slot.sink,
        newItemId: () => newId('item'),
        conversationId: last ? this.#conversationId : null,
        metadata: { chain: name, step: step.name },
        maxOutputTokens: 'inf',
        onError: (err) => log.warn({ err, step: step.name }, 'chain step failed upstream'),
        toolSteps: { reached: round >= limits.maxToolSteps, max: limits.maxToolSteps, serverTools: new Set(step.tools) }
      })
    }
    const startStep = (): ResponseRun => {
      const step = chain.steps[index]
      context = step === undefined ? [] : [userItem(renderTemplate(step.prompt, { input, steps: outputs }))]
      round = 1
      return stepRun(newId('resp'))
    }
    try {
      context = [userItem(renderTemplate(chain.steps[0]?.prompt ?? { parts: [] }, { input, steps: outputs }))]
      const first = stepRun(firstId)
      meter = await this.#takeRateLimit(first.request, 'inf')
      this.#turns++
      this.#started.add(firstId)
      await slot.start(first, log, () => {
        this.#started.delete(firstId)
        meter?.settle()
      }, async (response, signal) => {
        if (response.status !== 'completed') return undefined
        const step = chain.steps[index]
        const last = index === chain.steps.length - 1
        const calls = functionCalls(response)
        if (calls.length > 0) {
          // A tool round inside the step: the step's own context grows by the calls and outputs.
          const results = await this.#callTools(calls, signal)
          if (last) {
            for (const output of results) this.#emitStoredOutput(slot.sink, output)
            await slot.flush()
          }
          context = [...context, ...calls, ...results]
          if (signal.aborted || results.length < calls.length) return undefined
          round++
          return stepRun(newId('resp'))
        }
        if (step === undefined || last) return undefined
        outputs[step.name] = responseText(response)
        index++
        return startStep()
      })
    } catch (err) {
      await slot.abandon()
      throw err
    }
  }

  /**
   * Charges the key's rate limits for one request (a turn) and its estimated tokens — the input
   * plus the most it may generate — or throws GW_ERR_RATE_LIMITED (the socket stays open). The
   * returned meter settles the reservation against the turn's real usage when it ends. Every
   * change is reported to this socket as `rate_limits.updated`.
   */
  async #takeRateLimit (request: ModelRequest, maxOutput: number | 'inf'): Promise<Meter | undefined> {
    const rate = this.#options.rateLimits
    if (rate === undefined || (rate.limits.requestsPerMin <= 0 && rate.limits.tokensPerMin <= 0)) return undefined
    const { store, keyId, limits } = rate
    const inputTokens = limits.tokensPerMin > 0 ? estimateInputTokens(request) : 0
    if (limits.tokensPerMin > 0 && inputTokens > limits.tokensPerMin) throw gatewayError('GW_ERR_RATE_LIMIT_TOO_LARGE', [inputTokens, limits.tokensPerMin])
    const reserved = limits.tokensPerMin > 0 ? Math.min(limits.tokensPerMin, inputTokens + (maxOutput === 'inf' ? rate.outputReserveTokens : maxOutput)) : 0
    const taken = await store.take(keyId, limits, { requests: 1, tokens: reserved })
    this.#emitRateLimits(taken.status)
    if (!taken.granted) {
      const limit = taken.exceeded === 'requests' ? `RATE_LIMIT_REQUESTS_PER_MIN (${limits.requestsPerMin})` : `RATE_LIMIT_TOKENS_PER_MIN (${limits.tokensPerMin})`
      throw gatewayError('GW_ERR_RATE_LIMITED', [taken.exceeded, limit, (taken.retryAfterMs / 1000).toFixed(1)], { retryAfterMs: taken.retryAfterMs })
    }
    let used = 0
    let settled = false
    return {
      add: (response) => { used += response.usage?.total_tokens ?? 0 },
      settle: () => {
        if (settled || limits.tokensPerMin <= 0) return
        settled = true
        store.settle(keyId, limits, reserved - used).then(
          (status) => this.#emitRateLimits(status),
          (err: unknown) => this.#log.warn({ err, keyId }, 'rate limit settle failed')
        )
      }
    }
  }

  #emitRateLimits (status: readonly LimitStatus[]): void {
    if (status.length === 0) return
    this.#emit({ type: 'rate_limits.updated', rate_limits: status.map((s) => ({ name: s.name, limit: s.limit, remaining: s.remaining, reset_seconds: s.resetSeconds })) })
  }

  /** Runs server-side tool calls concurrently; one output item per call, in call order. Never rejects. */
  async #callTools (calls: readonly CallItem[], signal: AbortSignal): Promise<Item[]> {
    const tools = this.#options.tools
    const context = { signal, conversationId: this.#conversationId, tenant: this.#options.tenant }
    const results = await Promise.all(calls.map(async (call) => tools.has(call.name)
      ? tools.call(call.name, call.arguments, context)
      : { ok: false, output: JSON.stringify({ error: { code: 'unknown_tool', message: `no server-side tool named ${call.name}` } }) }))
    return calls.map((call, index): Item => ({ id: newId('item'), object: 'realtime.item', type: 'function_call_output', status: 'completed', call_id: call.call_id, output: results[index]?.output ?? '' }))
  }

  /** Adds a tool output to the conversation, as the client sees any item arrive. */
  #emitStoredOutput (sink: ResponseSink, item: Item): void {
    sink.emit({ type: 'conversation.item.added', previous_item_id: PREVIOUS_ITEM, item }, { op: 'insert', item })
    sink.emit({ type: 'conversation.item.done', previous_item_id: PREVIOUS_ITEM, item })
  }

  /**
   * Runs the server-side tools a completed response asked for, concurrently, and adds their
   * outputs to the conversation. Resolves whether the turn goes on by itself: only when every
   * call was server-side (a client's own tools wait for the client's outputs) and not cancelled.
   */
  async #runServerTools (response: ResponseResource, sink: ResponseSink, signal: AbortSignal): Promise<boolean> {
    if (response.status !== 'completed') return false
    const calls = functionCalls(response)
    const server = calls.filter((call) => this.#options.tools.has(call.name))
    const mcp = (response.output ?? []).filter((item) => item.type === 'mcp_call')
    if (server.length === 0 && mcp.length === 0) return false
    if (server.length > 0) for (const output of await this.#callTools(server, signal)) this.#emitStoredOutput(sink, output)
    return server.length === calls.length && !signal.aborted
  }

  async #cancelResponse (event: EventOf<'response.cancel'>): Promise<void> {
    const local = event.response_id === undefined
      ? this.#options.hubs.localRun(this.#conversationId) ?? [...this.#localRuns.values()].at(-1)
      : this.#options.hubs.localRun(this.#conversationId, event.response_id) ?? this.#localRuns.get(event.response_id)
    if (local !== undefined) return local.abort(true)
    // Maybe it runs on another instance: the conversation's snapshot knows.
    const snapshot = await this.#snapshot()
    const active = snapshot.active?.responseId
    if (active === undefined || (event.response_id !== undefined && event.response_id !== active)) {
      throw gatewayError('GW_ERR_RESPONSE_NOT_ACTIVE', [], event.response_id === undefined ? {} : { param: 'response_id' })
    }
    await this.#options.backend.live.publishCancel(this.#conversationId, active)
  }

  #request (params: ResponseParamsOf, context: Item[], serverTools: boolean): ModelRequest {
    const config = this.#config
    const clientTools = params.tools ?? config.tools?.filter((tool): tool is FunctionTool => tool.type === 'function') ?? []
    const tools = [...clientTools.map(toChatTool), ...(serverTools ? [...this.#options.tools.chatTools, ...this.#mcp.chatTools()] : [])]
    const toolChoice = params.tool_choice ?? config.tool_choice
    const maxOutputTokens = params.max_output_tokens ?? config.max_output_tokens ?? 'inf'
    const temperature = params.temperature ?? config.temperature
    const parallel = params.parallel_tool_calls ?? config.parallel_tool_calls
    return {
      model: this.#upstreamModel(params.model ?? config.model),
      messages: toChatMessages(context, params.instructions ?? config.instructions),
      ...(tools.length > 0 ? { tools } : {}),
      ...(toolChoice === undefined ? {} : { toolChoice: toChatToolChoice(toolChoice) }),
      ...(parallel === undefined ? {} : { parallelToolCalls: parallel }),
      ...(temperature === undefined ? {} : { temperature }),
      ...(maxOutputTokens === 'inf' ? {} : { maxOutputTokens }),
      ...(config.truncation === undefined ? {} : { truncation: config.truncation })
    }
  }

  #upstreamModel (model: string): string {
    return /realtime|^gpt-audio/.test(model) ? this.#options.defaultModel : model
  }

  async #snapshot (): Promise<Snapshot> {
    const snapshot = await this.#options.backend.conversations.snapshot(this.#conversationId, this.#options.tenant)
    if (snapshot === undefined) throw gatewayError('GW_ERR_CONVERSATION_NOT_FOUND', [this.#conversationId])
    return snapshot
  }

  async #items (): Promise<Item[]> {
    return (await this.#snapshot()).items
  }

  /** A log event for this socket (already stamped with its cursor event_id). */
  #deliver (event: string): void {
    this.#watch(event)
    this.#sendFrame(event)
  }

  /**
   * Watches response boundaries on the feed: a response generated elsewhere that goes silent for
   * two lease lifetimes may have lost its instance; then this session checks and ends it.
   */
  #watch (event: string): void {
    const boundary = RESPONSE_BOUNDARY.exec(event)?.[1]
    if (boundary === 'done') {
      clearTimeout(this.#watchdog)
      this.#watchdog = undefined
    } else if (this.#watchdog !== undefined) {
      this.#watchdog.refresh() // per event: push the deadline back, allocating nothing
    } else if (boundary === 'created') {
      this.#watchdog = setTimeout(() => {
        this.#watchdog = undefined
        if (!this.#closed && this.#options.hubs.localRun(this.#conversationId) === undefined) this.#options.responses.recoverOrphan(this.#conversationId, this.#log)
      }, this.#options.limits.leaseTtlMs * 2).unref()
    }
  }

  /** A session-local event (session.*, errors, replays): stamps a non-cursor event_id. */
  #emit (event: OutgoingEvent): void {
    this.#sendFrame(encode({ event_id: this.#nextEventId(), ...event }))
  }

  /**
   * The single exit to the socket: enforces MAX_PENDING_BYTES. A frame is always sent when the
   * network took everything offered before (one large event, or many at once, is not a slow
   * client); otherwise the queue plus the frame must fit.
   */
  #sendFrame (frame: string): void {
    const socket = this.#options.socket
    if (!socket.isOpen) return
    if (socket.stalled && socket.bufferedAmount + Buffer.byteLength(frame) > this.#options.limits.maxPendingBytes) {
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
