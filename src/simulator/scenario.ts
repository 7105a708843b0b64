/**
 * Scenarios for the OpenAI-compatible upstream simulator, and the pure functions that turn one
 * into the exact chunks (or completion) a gpt-4o Chat Completions stream would carry. Nothing
 * here does I/O; simulator.ts paces and writes what these functions build.
 */
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionMessageFunctionToolCall,
  ChatCompletionMessageParam
} from 'openai/resources/chat/completions'
import type { CompletionUsage } from 'openai/resources/completions'

/** One function call the simulated assistant makes. `arguments` is streamed in 3–7 character fragments. */
export interface SimulatedToolCall {
  name: string
  arguments: string
  /** Defaults to a `call_…` id derived from the completion id and the call's index. */
  id?: string
}

/** How a simulated request goes wrong. `afterChunks` counts `data:` chunks (the role chunk is the first). */
export type SimulatedFailure =
  /** HTTP error before any byte of the stream; body is `{error:{message,type,code}}`. */
  | { kind: 'status', status: number, retryAfterSeconds?: number, message?: string }
  /** Destroy the socket after N chunks, with no `[DONE]` and no terminating HTTP chunk. */
  | { kind: 'cut', afterChunks: number }
  /** Send an in-band `data: {"error":{…}}` event after N chunks, then end the response. */
  | { kind: 'error-event', afterChunks: number, message?: string }
  /** Stop after N chunks and hold the connection open until the client goes away. */
  | { kind: 'stall', afterChunks: number }

export type SimulatedFinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter'

/** What the simulator replies to one chat request. Every field is optional. */
export interface Scenario {
  /** Assistant content. Defaults to a reply derived from the request (none when `toolCalls` is set). */
  text?: string
  /** Streamed as `tool_calls` deltas after the text. */
  toolCalls?: SimulatedToolCall[]
  /** Defaults to 'tool_calls' when there are tool calls, else 'stop'. */
  finishReason?: SimulatedFinishReason
  /** Defaults to rough token counts; `false` omits usage (no usage chunk, no `usage` field). */
  usage?: { prompt_tokens: number, completion_tokens: number } | false
  /** Delay before the first (role) chunk. */
  firstTokenDelayMs?: number
  /** Delay between chunks. */
  tokenDelayMs?: number
  /** 'event' (default): one write per SSE event. 'bytes': the SSE byte stream in 1–3 byte writes. */
  chunking?: 'event' | 'bytes'
  /** Sends an SSE comment (`: keep-alive`) before every chunk, as proxies and some servers do. */
  keepAlive?: boolean
  failure?: SimulatedFailure
}

/** The identity and options of one simulated completion. */
export interface CompletionMeta {
  /** `chatcmpl-sim-…`, shared by every chunk. */
  id: string
  /** Unix seconds. */
  created: number
  /** Echo of the request's model. */
  model: string
  /** `stream_options.include_usage` of the request. */
  includeUsage: boolean
  /** Prompt token count used when the scenario does not fix usage. */
  promptTokens: number
}

/** Fingerprint stamped on every chunk, shaped like the real ones. */
export const SYSTEM_FINGERPRINT = 'fp_sim0c0ffee'

// GPT-2-style pre-tokenisation: contractions, words with their leading space, numbers in
// groups of 3, punctuation/symbol runs, whitespace. The final `[^]` alternative makes the
// pattern match at every position, so consecutive matches always cover the whole input.
const PIECE = /'(?:s|t|re|ve|m|ll|d)(?![\p{L}\p{M}])| ?[\p{L}\p{M}]+| ?\p{N}{1,3}| ?[^\s\p{L}\p{M}\p{N}]+|\s+(?!\S)|\s+|[^]/gu
const ASCII = /^[\u0000-\u007f]*$/ // eslint-disable-line no-control-regex
/** Longest delta, in code points: ASCII pieces are split after 10, other scripts after 3. */
const MAX_ASCII_PIECE = 10
const MAX_OTHER_PIECE = 3
/** Tool-call argument fragment sizes, in code points, used in rotation. */
const ARGUMENT_FRAGMENT_SIZES = [3, 5, 4, 7, 6]

/** Join `codePoints` into consecutive groups whose sizes follow `sizes` in rotation. */
function groupCodePoints (codePoints: string[], sizes: readonly number[]): string[] {
  const groups: string[] = []
  let start = 0
  for (let turn = 0; start < codePoints.length; turn++) {
    const size = sizes[turn % sizes.length] ?? 1
    groups.push(codePoints.slice(start, start + size).join(''))
    start += size
  }
  return groups
}

/**
 * Split text into realistic streaming deltas: word pieces carrying their leading space, long
 * words and non-Latin runs cut into a few code points each. Lossless for any string:
 * `tokenize(s).join('') === s`. Cuts fall between code points, never inside a surrogate pair
 * (they may fall between a base character and its combining mark, as real tokenisers do).
 */
export function tokenize (text: string): string[] {
  const deltas: string[] = []
  for (const match of text.matchAll(PIECE)) {
    const piece = match[0]
    const limit = ASCII.test(piece) ? MAX_ASCII_PIECE : MAX_OTHER_PIECE
    deltas.push(...groupCodePoints(Array.from(piece), [limit]))
  }
  return deltas
}

/** Split tool-call arguments into 3–7 code point fragments (a deterministic rotation). Lossless. */
export function fragmentArguments (args: string): string[] {
  return groupCodePoints(Array.from(args), ARGUMENT_FRAGMENT_SIZES)
}

/** The text of a message's content: a string, or the text parts of a content-part array. */
function contentText (content: unknown): string {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) return ''
  const texts: string[] = []
  let images = 0
  for (const part of content) {
    if (typeof part !== 'object' || part === null) continue
    if ('text' in part && typeof part.text === 'string') texts.push(part.text)
    else if ('type' in part && part.type === 'image_url') images++
  }
  if (texts.length === 0 && images > 0) return '[image]'
  return texts.join(' ')
}

const FILLERS = [
  'This text comes from the Tokenwire upstream simulator.',
  'No model was consulted, so the answer is deterministic.',
  'Each turn gets its own reply, which keeps multi-turn tests honest.'
]

/**
 * The default assistant reply for a request: quotes the last user message (first 60 code
 * points) and the turn number (count of user messages), then one or two filler sentences.
 * Deterministic, so multi-turn tests can tell turns apart.
 */
export function defaultReplyText (messages: readonly ChatCompletionMessageParam[]): string {
  const userMessages = messages.filter((message) => message.role === 'user')
  const last = userMessages.at(-1)
  const codePoints = Array.from(last === undefined ? '' : contentText(last.content))
  const quoted = codePoints.length > 60 ? `${codePoints.slice(0, 60).join('')}…` : codePoints.join('')
  const turn = userMessages.length
  const fillers = turn % 2 === 1 ? FILLERS.slice(0, 1) : FILLERS.slice(1, 3)
  return [`Simulated reply to "${quoted}" (turn ${turn}).`, ...fillers].join(' ')
}

/** A rough prompt token count: about 4 characters per token plus 4 tokens per message and 3 for priming. */
export function estimatePromptTokens (messages: readonly ChatCompletionMessageParam[]): number {
  let tokens = 3
  for (const message of messages) {
    tokens += 4 + Math.ceil(contentText(message.content).length / 4)
  }
  return tokens
}

/**
 * Merge the simulator's defaults, the queued scenario (which wins) and the request into the
 * scenario actually played: fills `text` with {@link defaultReplyText} when neither sets it and
 * there are no tool calls.
 */
export function resolveScenario (
  defaults: Partial<Scenario>,
  queued: Scenario | undefined,
  messages: readonly ChatCompletionMessageParam[]
): Scenario {
  const scenario: Scenario = { ...defaults, ...queued }
  const hasToolCalls = (scenario.toolCalls?.length ?? 0) > 0
  if (scenario.text === undefined && !hasToolCalls) scenario.text = defaultReplyText(messages)
  return scenario
}

/** The finish reason a scenario ends with. */
function finishReasonOf (scenario: Scenario): SimulatedFinishReason {
  return scenario.finishReason ?? ((scenario.toolCalls?.length ?? 0) > 0 ? 'tool_calls' : 'stop')
}

/** The `call_…` id of tool call `index`. */
function toolCallId (call: SimulatedToolCall, index: number, meta: CompletionMeta): string {
  return call.id ?? `call_${meta.id.replace(/^chatcmpl-/, '').replace(/[^A-Za-z0-9]/g, '')}${index}`
}

/** Usage for the scenario, or undefined when it is turned off. */
function usageOf (scenario: Scenario, meta: CompletionMeta): CompletionUsage | undefined {
  if (scenario.usage === false) return undefined
  let prompt = meta.promptTokens
  let completion = tokenize(scenario.text ?? '').length
  for (const call of scenario.toolCalls ?? []) completion += 1 + fragmentArguments(call.arguments).length
  if (scenario.usage !== undefined) {
    prompt = scenario.usage.prompt_tokens
    completion = scenario.usage.completion_tokens
  }
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion }
}

/**
 * Every chunk of a streamed completion for `scenario`, in order, without `[DONE]`: the role
 * chunk, one chunk per content delta, per tool call a header chunk and its argument fragments,
 * the `finish_reason` chunk and, when `meta.includeUsage` and usage is on, the usage chunk
 * (`choices: []`; every other chunk then carries `usage: null`). `failure` is not applied here.
 */
export function buildChunks (scenario: Scenario, meta: CompletionMeta): ChatCompletionChunk[] {
  const usage = meta.includeUsage ? usageOf(scenario, meta) : undefined
  const chunk = (
    delta: ChatCompletionChunk.Choice.Delta,
    finishReason: ChatCompletionChunk.Choice['finish_reason'] = null
  ): ChatCompletionChunk => ({
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
    ...(usage === undefined ? {} : { usage: null })
  })

  const text = scenario.text ?? ''
  const toolCalls = scenario.toolCalls ?? []
  const startsWithToolCalls = text === '' && toolCalls.length > 0
  const chunks = [chunk({ role: 'assistant', content: startsWithToolCalls ? null : '' })]
  for (const content of tokenize(text)) chunks.push(chunk({ content }))
  toolCalls.forEach((call, index) => {
    const id = toolCallId(call, index, meta)
    chunks.push(chunk({ tool_calls: [{ index, id, type: 'function', function: { name: call.name, arguments: '' } }] }))
    for (const fragment of fragmentArguments(call.arguments)) {
      chunks.push(chunk({ tool_calls: [{ index, function: { arguments: fragment } }] }))
    }
  })
  chunks.push(chunk({}, finishReasonOf(scenario)))
  if (usage !== undefined) {
    chunks.push({
      id: meta.id,
      object: 'chat.completion.chunk',
      created: meta.created,
      model: meta.model,
      system_fingerprint: SYSTEM_FINGERPRINT,
      choices: [],
      usage
    })
  }
  return chunks
}

/**
 * The non-streaming `chat.completion` object for `scenario`: the same text, tool calls and
 * finish reason as {@link buildChunks}, with usage unless the scenario turns it off
 * (`meta.includeUsage` is ignored: non-streaming responses always report usage).
 */
export function buildCompletion (scenario: Scenario, meta: CompletionMeta): ChatCompletion {
  const text = scenario.text ?? ''
  const toolCalls: ChatCompletionMessageFunctionToolCall[] = (scenario.toolCalls ?? []).map((call, index) => ({
    id: toolCallId(call, index, meta),
    type: 'function',
    function: { name: call.name, arguments: call.arguments }
  }))
  const usage = usageOf(scenario, meta)
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    system_fingerprint: SYSTEM_FINGERPRINT,
    choices: [{
      index: 0,
      message: {
        role: 'assistant',
        content: text === '' && toolCalls.length > 0 ? null : text,
        refusal: null,
        annotations: [],
        ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {})
      },
      logprobs: null,
      finish_reason: finishReasonOf(scenario)
    }],
    ...(usage === undefined ? {} : { usage })
  }
}
