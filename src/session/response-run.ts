/**
 * One response: drives a ModelProvider stream and turns it into the Realtime event sequence
 * (created → output items, parts and deltas → done), however it ends. Framework-free.
 */
import { setImmediate as yieldToIo } from 'node:timers/promises'
import { responseDone, responseOutput, responseStarted, upstreamEnd } from '../diagnostics.js'
import { isGatewayError, type GatewayError } from '../errors.js'
import type { Item, OutgoingEvent, ResponseResource } from '../protocol/events.js'
import type { FinishReason, ModelProvider, ModelRequest, TokenUsage } from '../providers/provider.js'
import { PREVIOUS_ITEM_MARKER, type ItemOp } from '../store/conversation-store.js'
import type { McpCallResult } from '../tools/mcp.js'
import { estimateUsage } from './usage-estimate.js'

type MessageItem = Extract<Item, { type: 'message', role: 'assistant' }>
type CallItem = Extract<Item, { type: 'function_call' }>
type McpCallItem = Extract<Item, { type: 'mcp_call' }>

/** The MCP tools a response may call: the gateway runs them inside the response (GA `mcp_call`). */
export interface McpTools {
  /** The server label of the MCP tool `name`, or undefined when it is not an MCP tool. */
  serverOf (name: string): string | undefined
  /** Runs one call; never rejects. */
  call (name: string, argumentsJson: string, signal: AbortSignal): Promise<McpCallResult>
}

/** Where a run's events go: the conversation's log (with the item change each describes), or one socket. */
export interface ResponseSink {
  /** Sends one event; `op` is the change to the conversation's items it describes. */
  emit (event: OutgoingEvent, op?: ItemOp): void
  /** The item's state changed (streamed text so far): keep it with the next write. */
  touch (item: Item): void
}

/**
 * Longest a run handles upstream events without letting I/O in, in ms. A burst the SDK already
 * holds (a fast upstream sends a whole reply in a few TCP reads) is parsed in one chain of
 * promises; without a pause, the store's reply to the first token's write — and every other
 * socket — would wait for the end of the burst.
 */
const SLICE_MS = 0.5

/** `previous_item_id` of a conversation.item.added, filled in by the store atomically. */
const PREVIOUS_ITEM = JSON.parse(PREVIOUS_ITEM_MARKER) as string

export interface ResponseRunOptions {
  readonly id: string
  readonly provider: ModelProvider
  readonly request: ModelRequest
  readonly sink: ResponseSink
  readonly newItemId: () => string
  /** `null`: an out-of-band response; its items join no conversation. */
  readonly conversationId: string | null
  readonly metadata: Record<string, string> | null
  readonly maxOutputTokens: number | 'inf'
  /** Told when the upstream fails (for logging); the client learns from response.done. */
  readonly onError?: (err: unknown) => void
  /**
   * The turn's model↔tool bound: when `reached`, a response that ends asking for a server-side
   * tool ends `incomplete` (max_tool_steps) instead, and the calls are left unanswered.
   */
  readonly toolSteps?: { readonly reached: boolean, readonly max: number, readonly serverTools: ReadonlySet<string> }
  /** MCP tools: calls to them become `mcp_call` items that the run executes itself. */
  readonly mcp?: McpTools
  /** A failed response also gets an `error` event just before its response.done (FAILED_RESPONSE_ERROR_EVENT). */
  readonly errorEvent?: boolean
  /** Told the final response (with its usage, estimated when the upstream sent none) as it ends. */
  readonly onDone?: (response: ResponseResource) => void
}

interface OpenText { readonly item: MessageItem, readonly outputIndex: number, text: string }
interface OpenCall { readonly item: CallItem | McpCallItem, readonly outputIndex: number }

export class ResponseRun {
  readonly id: string

  readonly #controller = new AbortController()
  readonly #options: ResponseRunOptions
  readonly #output: Item[] = []
  #text: OpenText | undefined
  readonly #calls = new Map<number, OpenCall>()
  #usage: TokenUsage | undefined
  #estimated = false
  #cancelled = false
  /** Why the gateway stopped the response (a lost lease, a failed write): it ends failed. */
  #stoppedBy: GatewayError | undefined

  constructor (options: ResponseRunOptions) {
    this.id = options.id
    this.#options = options
  }

  /** The upstream request this response sends. */
  get request (): ModelRequest {
    return this.#options.request
  }

  /** Whether the response joins the conversation (not out-of-band). */
  get inConversation (): boolean {
    return this.#options.conversationId !== null
  }

  /**
   * Stops the upstream request at once. `clientCancelled`: the client asked (response.cancel).
   * `cause`: the gateway had to stop it; the response ends `failed` with that error.
   */
  abort (clientCancelled: boolean, cause?: GatewayError): void {
    if (clientCancelled) this.#cancelled = true
    else if (cause !== undefined && !this.#controller.signal.aborted) this.#stoppedBy = cause
    this.#controller.abort()
  }

  /** Runs to the end and resolves the final response; never rejects. */
  async run (): Promise<ResponseResource> {
    const emit = this.#emit
    if (responseStarted.hasSubscribers) responseStarted.publish({ run: this, id: this.id, model: this.#options.request.model, conversationId: this.#options.conversationId, request: this.#options.request })
    emit({ type: 'response.created', response: this.#resource('in_progress') })
    let finish: FinishReason | undefined
    let failure: unknown
    try {
      let sliceStart = -Infinity
      let handledAt = -Infinity
      for await (const event of this.#options.provider.stream(this.#options.request, this.#controller.signal)) {
        const now = performance.now()
        // After a wait for the upstream, I/O has had its turn: a new slice starts.
        if (now - handledAt > SLICE_MS) sliceStart = now
        else if (now - sliceStart > SLICE_MS) {
          await yieldToIo()
          sliceStart = performance.now()
        }
        if (responseOutput.hasSubscribers && event.type !== 'usage' && event.type !== 'finish') responseOutput.publish(this)
        switch (event.type) {
          case 'text': this.#onText(event.delta); break
          case 'tool_call': this.#onToolCall(event.index, event.callId, event.name); break
          case 'tool_call_arguments': this.#onArguments(event.index, event.delta); break
          case 'usage': this.#usage = event.usage; break
          case 'finish':
            finish = event.reason
            await this.#runMcp()
            this.#closeItems((finish === 'stop' || finish === 'tool_calls') && !this.#controller.signal.aborted ? 'completed' : 'incomplete')
            break
        }
        handledAt = performance.now()
      }
    } catch (err) {
      if (!this.#controller.signal.aborted) {
        failure = err
        this.#options.onError?.(err)
      }
    }
    if (upstreamEnd.hasSubscribers) upstreamEnd.publish(failure === undefined ? { request: this.#options.request } : { request: this.#options.request, error: failure })
    // The SDK's iterator ends quietly on abort: the outcome comes from our own state.
    this.#closeItems('incomplete')
    if (this.#usage === undefined) await this.#estimateUsage()
    const response = this.#final(finish, failure ?? this.#stoppedBy)
    const error = response.status_details?.error
    if (response.status === 'failed' && this.#options.errorEvent === true && error !== undefined) {
      emit({ type: 'error', error: { type: error.type ?? 'server_error', code: error.code ?? null, message: (error as { message?: string }).message ?? 'The response failed', param: null, event_id: null } })
    }
    if (responseDone.hasSubscribers) responseDone.publish({ run: this, id: this.id, model: this.#options.request.model, request: this.#options.request, response })
    emit({ type: 'response.done', response })
    this.#options.onDone?.(response)
    return response
  }

  /** No usage from the upstream (cancelled, failed, or not reported): estimate it from what was sent and generated. */
  async #estimateUsage (): Promise<void> {
    const generated = this.#output.map((item) => item.type === 'message'
      ? item.content.map((part) => part.text ?? '').join('')
      : item.type === 'function_call' || item.type === 'mcp_call' ? item.arguments : '').join('')
    try {
      this.#usage = await estimateUsage(this.#options.request, generated)
      this.#estimated = true
    } catch {
      // Without the tokenizer there is no estimate; response.done then carries no usage.
    }
  }

  #final (finish: FinishReason | undefined, failure: unknown): ResponseResource {
    if (this.#controller.signal.aborted && this.#stoppedBy === undefined) {
      return this.#resource('cancelled', this.#cancelled ? { type: 'cancelled', reason: 'client_cancelled' } : { type: 'cancelled' })
    }
    if (failure !== undefined || finish === undefined) {
      const error = isGatewayError(failure)
        ? { type: failure.type, code: failure.wire, message: failure.message }
        : { type: 'server_error', code: 'server_error', message: 'The response failed' }
      return this.#resource('failed', { type: 'failed', error })
    }
    const steps = this.#options.toolSteps
    const serverSide = (item: Item) => (item.type === 'function_call' && steps?.serverTools.has(item.name) === true) || item.type === 'mcp_call'
    if (finish === 'tool_calls' && steps?.reached === true && this.#output.some(serverSide)) {
      const error = { type: 'invalid_request_error', code: 'max_tool_steps', message: `MAX_TOOL_STEPS (${steps.max}) reached: the model asked for more tool calls in this turn` }
      return this.#resource('incomplete', { type: 'incomplete', error })
    }
    if (finish === 'length') return this.#resource('incomplete', { type: 'incomplete', reason: 'max_output_tokens' })
    if (finish === 'content_filter') return this.#resource('incomplete', { type: 'incomplete', reason: 'content_filter' })
    return this.#resource('completed')
  }

  #resource (status: NonNullable<ResponseResource['status']>, statusDetails?: ResponseResource['status_details']): ResponseResource {
    const { conversationId, metadata, maxOutputTokens } = this.#options
    const usage = this.#usage
    return {
      id: this.id,
      object: 'realtime.response',
      status,
      ...(statusDetails === undefined ? {} : { status_details: statusDetails }),
      output: status === 'in_progress' ? [] : structuredClone(this.#output),
      ...(conversationId === null ? {} : { conversation_id: conversationId }),
      output_modalities: ['text'],
      max_output_tokens: maxOutputTokens,
      metadata,
      ...(usage === undefined || status === 'in_progress'
        ? {}
        : {
            usage: {
              total_tokens: usage.totalTokens,
              input_tokens: usage.inputTokens,
              output_tokens: usage.outputTokens,
              input_token_details: { text_tokens: usage.inputTokens - (usage.cachedInputTokens ?? 0), audio_tokens: 0, image_tokens: 0, cached_tokens: usage.cachedInputTokens ?? 0 },
              output_token_details: { text_tokens: usage.outputTokens, audio_tokens: 0 },
              // Extension: the upstream sent no usage; these are the gateway's own counts.
              ...(this.#estimated ? { estimated: true } : {})
            }
          })
    }
  }

  readonly #emit = (event: OutgoingEvent, op?: ItemOp): void => this.#options.sink.emit(event, op)

  #addItem (item: Item): number {
    const outputIndex = this.#output.push(item) - 1
    this.#emit({ type: 'response.output_item.added', response_id: this.id, output_index: outputIndex, item: structuredClone(item) })
    if (this.inConversation) {
      this.#emit({ type: 'conversation.item.added', previous_item_id: PREVIOUS_ITEM, item: structuredClone(item) }, { op: 'insert', item: structuredClone(item) })
    }
    return outputIndex
  }

  #onText (delta: string): void {
    let open = this.#text
    if (open === undefined) {
      const item: MessageItem = { id: this.#options.newItemId(), object: 'realtime.item', type: 'message', role: 'assistant', status: 'in_progress', content: [] }
      const outputIndex = this.#addItem(item)
      open = this.#text = { item, outputIndex, text: '' }
      this.#emit({ type: 'response.content_part.added', response_id: this.id, item_id: item.id, output_index: outputIndex, content_index: 0, part: { type: 'text', text: '' } })
    }
    open.text += delta
    this.#emit({ type: 'response.output_text.delta', response_id: this.id, item_id: open.item.id, output_index: open.outputIndex, content_index: 0, delta })
    if (this.inConversation) {
      open.item.content = [{ type: 'output_text', text: open.text }]
      this.#options.sink.touch(open.item)
    }
  }

  #onToolCall (index: number, callId: string, name: string): void {
    if (this.#calls.has(index)) return
    const id = this.#options.newItemId()
    const server = this.#options.mcp?.serverOf(name)
    const item: CallItem | McpCallItem = server === undefined
      ? { id, object: 'realtime.item', type: 'function_call', status: 'in_progress', call_id: callId, name, arguments: '' }
      : { id, object: 'realtime.item', type: 'mcp_call', status: 'in_progress', server_label: server, name, arguments: '' }
    const outputIndex = this.#addItem(item)
    this.#calls.set(index, { item, outputIndex })
  }

  #onArguments (index: number, delta: string): void {
    const open = this.#calls.get(index)
    if (open === undefined) return
    const { item, outputIndex } = open
    item.arguments += delta
    if (item.type === 'mcp_call') {
      this.#emit({ type: 'response.mcp_call_arguments.delta', response_id: this.id, item_id: item.id, output_index: outputIndex, delta })
    } else {
      this.#emit({ type: 'response.function_call_arguments.delta', response_id: this.id, item_id: item.id, output_index: outputIndex, call_id: item.call_id, delta })
    }
    if (this.inConversation) this.#options.sink.touch(item)
  }

  /**
   * Runs the response's MCP calls (concurrently), as the GA Realtime API does inside the
   * response: arguments done, in progress, then completed (with output) or failed (with error).
   * Past the turn's tool bound they are not run.
   */
  async #runMcp (): Promise<void> {
    const mcp = this.#options.mcp
    const calls = [...this.#calls.values()].filter((open): open is { item: McpCallItem, outputIndex: number } => open.item.type === 'mcp_call')
    if (mcp === undefined || calls.length === 0 || this.#options.toolSteps?.reached === true) return
    for (const { item, outputIndex } of calls) {
      this.#emit({ type: 'response.mcp_call_arguments.done', response_id: this.id, item_id: item.id, output_index: outputIndex, arguments: item.arguments })
      this.#emit({ type: 'response.mcp_call.in_progress', item_id: item.id, output_index: outputIndex })
    }
    const outcomes = await Promise.all(calls.map(async ({ item }) => mcp.call(item.name, item.arguments, this.#controller.signal)))
    for (const [index, { item, outputIndex }] of calls.entries()) {
      const outcome = outcomes[index]
      if (outcome?.ok === true) {
        item.output = outcome.output
        this.#emit({ type: 'response.mcp_call.completed', item_id: item.id, output_index: outputIndex })
      } else {
        const error = outcome?.error ?? { type: 'protocol_error' as const, message: 'no result' }
        item.error = error.type === 'tool_execution_error'
          ? { type: 'tool_execution_error', message: error.message }
          : { type: error.type, code: error.code ?? -32603, message: error.message }
        this.#emit({ type: 'response.mcp_call.failed', item_id: item.id, output_index: outputIndex })
      }
    }
  }

  /** Ends every open item, in output order, with the events the Realtime API sends for each. */
  #closeItems (status: 'completed' | 'incomplete'): void {
    const open: Array<OpenText | OpenCall> = [...(this.#text ? [this.#text] : []), ...this.#calls.values()]
    this.#text = undefined
    this.#calls.clear()
    open.sort((a, b) => a.outputIndex - b.outputIndex)
    for (const entry of open) {
      if ('text' in entry) entry.item.content = [{ type: 'output_text', text: entry.text }]
      entry.item.status = status
      this.#output[entry.outputIndex] = entry.item
      for (const event of closingEvents(this.id, entry.item, entry.outputIndex, this.inConversation)) {
        this.#emit(event, event.type === 'conversation.item.done' ? { op: 'replace', item: structuredClone(entry.item) } : undefined)
      }
    }
  }
}

/**
 * The events that end one output item, already in its final state: the text or arguments
 * done, the part done, the item done, and (in a conversation) conversation.item.done.
 */
export function closingEvents (responseId: string, item: Item, outputIndex: number, inConversation: boolean): OutgoingEvent[] {
  const base = { response_id: responseId, item_id: item.id, output_index: outputIndex }
  const events: OutgoingEvent[] = []
  if (item.type === 'message') {
    const text = item.content.map((part) => part.text ?? '').join('')
    events.push({ type: 'response.output_text.done', ...base, content_index: 0, text })
    events.push({ type: 'response.content_part.done', ...base, content_index: 0, part: { type: 'text', text } })
  } else if (item.type === 'function_call') {
    events.push({ type: 'response.function_call_arguments.done', ...base, call_id: item.call_id, name: item.name, arguments: item.arguments })
  }
  events.push({ type: 'response.output_item.done', response_id: responseId, output_index: outputIndex, item: structuredClone(item) })
  if (inConversation) events.push({ type: 'conversation.item.done', item: structuredClone(item) })
  return events
}
