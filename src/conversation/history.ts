/**
 * Turns a conversation's items into the Chat Completions messages of one upstream request, and
 * fits those messages into the model's context budget (context-budget.ts) by leaving the oldest
 * turns out. The same items always give the same messages; the stored history is never changed.
 */
import { gatewayError } from '../errors.js'
import type { Item } from '../protocol/events.js'
import type { ChatContentPart, ChatMessage, ChatToolCall, ModelProvider, ModelRequest } from '../providers/provider.js'
import { inputBudget, loadTokenizer, planStart, TokenCounter, tokenUpperBound, type ContextBudgetConfig } from './context-budget.js'

type CallItem = Extract<Item, { type: 'function_call' }>
type McpCallItem = Extract<Item, { type: 'mcp_call' }>

/** An MCP call carries its own result: the output, or its error as JSON the model can read. */
function mcpResult (item: McpCallItem): string {
  return item.output ?? JSON.stringify({ error: item.error ?? { message: 'no result' } })
}

/**
 * Maps items oldest-first onto messages, after a system message with `instructions`.
 * Chat Completions wants every tool call answered by a `tool` message right after the
 * assistant message that made it, so: items still `in_progress` are left out; a run of
 * function calls becomes one assistant message (joined to the assistant text before it)
 * followed by their outputs, wherever those were stored; calls without an output, outputs
 * without a completed call, and second outputs for one call are left out.
 */
export function toChatMessages (items: readonly Item[], instructions: string | undefined): ChatMessage[] {
  const messages: ChatMessage[] = []
  if (instructions !== undefined && instructions !== '') messages.push({ role: 'system', content: instructions })
  const outputs = new Map<string, string>()
  for (const item of items) {
    if (item.type === 'function_call_output' && item.status !== 'in_progress' && !outputs.has(item.call_id)) outputs.set(item.call_id, item.output)
  }

  let run: CallItem[] = []
  const flush = () => {
    const calls = run.filter((call) => outputs.has(call.call_id))
    run = []
    if (calls.length === 0) return
    const toolCalls: ChatToolCall[] = calls.map((call) => ({ id: call.call_id, name: call.name, arguments: call.arguments }))
    const last = messages.at(-1)
    if (last?.role === 'assistant' && last.toolCalls === undefined) last.toolCalls = toolCalls
    else messages.push({ role: 'assistant', content: null, toolCalls })
    for (const call of calls) {
      messages.push({ role: 'tool', toolCallId: call.call_id, content: outputs.get(call.call_id) ?? '' })
      outputs.delete(call.call_id)
    }
  }

  for (const item of items) {
    if (item.status === 'in_progress' || item.type === 'mcp_list_tools') continue
    if (item.type === 'mcp_call') {
      // The gateway ran it: the call and its result become a tool call and its answer.
      if (item.status !== 'completed') continue
      outputs.set(item.id, mcpResult(item))
      run.push({ id: item.id, object: 'realtime.item', type: 'function_call', status: 'completed', call_id: item.id, name: item.name, arguments: item.arguments })
      continue
    }
    if (item.type === 'function_call_output') {
      flush() // an answer ends the model's turn: later calls were a new decision
      continue
    }
    if (item.type === 'function_call') {
      if (item.status === 'completed') run.push(item)
      continue
    }
    flush()
    messages.push(toMessage(item))
  }
  flush()
  return messages
}

function toMessage (item: Extract<Item, { type: 'message' }>): ChatMessage {
  const text = (parts: ReadonlyArray<{ text?: string }>) => parts.map((p) => p.text ?? '').join('')
  switch (item.role) {
    case 'system':
      return { role: 'system', content: text(item.content) }
    case 'assistant':
      return { role: 'assistant', content: text(item.content) }
    case 'user': {
      const parts: ChatContentPart[] = item.content.map((part) => part.type === 'input_image'
        ? { type: 'image_url', url: part.image_url ?? '', ...(part.detail === undefined ? {} : { detail: part.detail }) }
        : { type: 'text', text: part.text ?? '' })
      const only = parts[0]
      return { role: 'user', content: parts.length === 1 && only?.type === 'text' ? only.text : parts }
    }
  }
}

// ---- Context budget ------------------------------------------------------------------------

/** Chat framing per message and per tool call, and the reply's priming (OpenAI's published accounting). */
const PER_MESSAGE = 3
const PER_TOOL_CALL = 3
const REPLY_PRIMING = 3
/** An image's tokens cannot be known without decoding it: a 512×512 tile at `low`, a 1024×1024 image otherwise. */
const IMAGE_LOW = 85
const IMAGE_OTHER = 765

/** What fitting did to one request. */
export interface ContextFit {
  readonly request: ModelRequest
  /** Messages left out (oldest turns). */
  readonly dropped: number
  /** Input tokens of the request as sent, as counted here; undefined when the fast bound made counting unnecessary. */
  readonly inputTokens?: number
  readonly budget: number
}

function messageTokens (message: ChatMessage, count: (text: string) => number): number {
  switch (message.role) {
    case 'system':
    case 'tool':
      return PER_MESSAGE + count(message.content)
    case 'user':
      return PER_MESSAGE + (typeof message.content === 'string'
        ? count(message.content)
        : message.content.reduce((total, part) => total + (part.type === 'text' ? count(part.text) : part.detail === 'low' ? IMAGE_LOW : IMAGE_OTHER), 0))
    case 'assistant':
      return PER_MESSAGE + (message.content === null ? 0 : count(message.content)) +
        (message.toolCalls ?? []).reduce((total, call) => total + PER_TOOL_CALL + count(call.name) + count(call.arguments), 0)
  }
}

/**
 * The request's messages as turns, which are kept or left out whole: a turn is a user message and
 * everything after it up to the next one — the assistant's answers, its tool calls and their
 * outputs (MCP calls included), so a call is never parted from its output. Messages before the
 * first user message make a turn of their own. System messages (the instructions, system items)
 * are pinned: always sent, where they stand.
 */
function turnsOf (messages: readonly ChatMessage[]): { pinned: number[], turns: number[][] } {
  const pinned: number[] = []
  const turns: number[][] = []
  for (const [index, message] of messages.entries()) {
    if (message.role === 'system') pinned.push(index)
    else if (message.role === 'user' || turns.length === 0) turns.push([index])
    else turns.at(-1)?.push(index)
  }
  return { pinned, turns }
}

/**
 * Fits `request` into its model's input budget (context-budget.ts `inputBudget`), following
 * `request.truncation`: `auto` (the default) leaves the oldest turns out until the rest fits;
 * `retention_ratio` cuts further, to that fraction, at points that stay put across turns;
 * `disabled` never cuts. The latest turn (from the last user message on) is always kept, and
 * the system messages and tool definitions always count. Rejects with
 * GW_ERR_CONTEXT_LENGTH_EXCEEDED when the request cannot fit. Short requests are not counted at
 * all: their byte length already bounds their token count.
 */
export async function fitToContext (request: ModelRequest, config: ContextBudgetConfig, counter: TokenCounter): Promise<ContextFit> {
  const { budget } = inputBudget(request.model, request.maxOutputTokens, config)
  const toolsJson = request.tools === undefined || request.tools.length === 0 ? '' : JSON.stringify(request.tools)
  const total = (count: (text: string) => number): number =>
    REPLY_PRIMING + count(toolsJson) + request.messages.reduce((sum, message) => sum + messageTokens(message, count), 0)
  if (total(tokenUpperBound) <= budget) return { request, dropped: 0, budget }

  await loadTokenizer()
  const count = (text: string): number => text === '' ? 0 : counter.count(text)
  const { pinned, turns } = turnsOf(request.messages)
  const perMessage = request.messages.map((message) => messageTokens(message, count))
  const tokensOf = (indexes: readonly number[]): number => indexes.reduce((sum, index) => sum + (perMessage[index] ?? 0), 0)
  const costs = turns.map(tokensOf)
  const pinnedTokens = REPLY_PRIMING + count(toolsJson) + tokensOf(pinned)
  const truncation = request.truncation ?? 'auto'
  const postInstructions = typeof truncation === 'object' ? truncation.token_limits?.post_instructions : undefined
  const limit = Math.min(budget - pinnedTokens, postInstructions ?? Number.POSITIVE_INFINITY)
  const start = limit < 0 ? undefined : planStart(costs, turns.length - 1, limit, truncation)
  /** Input tokens of the request with the turns from `first` on. */
  const inputTokensFrom = (first: number): number => pinnedTokens + costs.slice(first).reduce((sum, cost) => sum + cost, 0)
  if (start === undefined) {
    const needed = inputTokensFrom(0)
    const why = truncation === 'disabled'
      ? 'session.truncation is "disabled", so no turn was left out'
      : 'the latest turn alone does not fit, even with every older turn left out'
    throw gatewayError('GW_ERR_CONTEXT_LENGTH_EXCEEDED', [needed, JSON.stringify(request.model.slice(0, 128)), budget, why], { param: 'session.truncation' })
  }
  if (start === 0) return { request, dropped: 0, inputTokens: inputTokensFrom(0), budget }
  const keep = new Set([...pinned, ...turns.slice(start).flat()])
  const messages = request.messages.filter((_message, index) => keep.has(index))
  return { request: { ...request, messages }, dropped: request.messages.length - messages.length, inputTokens: inputTokensFrom(start), budget }
}

/**
 * Wraps a provider so every request is fitted into its model's context budget first (see
 * `fitToContext`). A request that cannot fit fails like an upstream error would — the response
 * ends `failed` with `context_length_exceeded` — and is never sent. `onFit` hears of every cut.
 */
export function withContextBudget (provider: ModelProvider, config: ContextBudgetConfig, onFit?: (fit: ContextFit) => void): ModelProvider {
  const fit = createContextFitter(config, onFit)
  return {
    async * stream (request, signal) {
      yield * provider.stream(await fit(request), signal)
    }
  }
}

/** Fits requests to their model's budget (see fitToContext), with one token-count cache. */
export function createContextFitter (config: ContextBudgetConfig, onFit?: (fit: ContextFit) => void): (request: ModelRequest) => Promise<ModelRequest> {
  const counter = new TokenCounter()
  return async (request) => {
    const fit = await fitToContext(request, config, counter)
    if (fit.dropped > 0) onFit?.(fit)
    return fit.request
  }
}
