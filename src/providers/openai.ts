/**
 * The only importer of `openai`: streams Chat Completions and maps SDK errors onto the
 * GW_ERR_PROVIDER_* registry. Retries are off here (maxRetries: 0); with-retry.ts owns them.
 */
import OpenAI, { APIError } from 'openai'
import type { ChatCompletionChunk, ChatCompletionCreateParamsStreaming, ChatCompletionMessageParam, ChatCompletionTool, ChatCompletionToolChoiceOption } from 'openai/resources/chat/completions'
import type { Log } from '../logger.js'
import { gatewayError, isGatewayError, type GatewayError } from '../errors.js'
import { createHttpFetch, textReader } from './http-fetch.js'
import { SseParser, type SseMessage } from './sse.js'
import type { ChatMessage, ChatToolChoice, FinishReason, ModelProvider, ModelRequest, ProviderEvent } from './provider.js'

export interface OpenAIProviderOptions {
  readonly baseURL: string
  /** The gateway's own upstream key. A client's key never goes upstream. */
  readonly apiKey: string
  /** Per attempt, until the response headers arrive. */
  readonly timeoutMs: number
  /** Longest silence allowed between two chunks of a started stream. */
  readonly idleTimeoutMs: number
  /** From the request to the first text or tool call (UPSTREAM_FIRST_TOKEN_TIMEOUT_MS); absent: none. */
  readonly firstTokenTimeoutMs?: number
  readonly logger: Log
}

/** Creates a provider over one `openai` client (one HTTP connection pool). */
export function createOpenAIProvider (options: OpenAIProviderOptions): ModelProvider {
  const log = options.logger
  const client = new OpenAI({
    baseURL: options.baseURL,
    apiKey: options.apiKey,
    maxRetries: 0,
    timeout: options.timeoutMs,
    fetch: createHttpFetch(),
    logLevel: 'warn',
    logger: {
      error: (message, ...rest) => log.error({ sdk: rest }, message),
      warn: (message, ...rest) => log.warn({ sdk: rest }, message),
      info: (message, ...rest) => log.info({ sdk: rest }, message),
      debug: (message, ...rest) => log.debug({ sdk: rest }, message)
    }
  })

  // Upstreams that predate `stream_options` refuse it (400); learnt once, then left out. The
  // reply's usage is then estimated by the gateway.
  let streamOptions = true

  return {
    async * stream (request, signal) {
      // Our own controller, so a silent upstream can be cut off as well as a cancelled one.
      const controller = new AbortController()
      const forward = () => controller.abort(signal.reason)
      if (signal.aborted) forward()
      signal.addEventListener('abort', forward, { once: true })
      let idle: NodeJS.Timeout | undefined
      let timedOut: 'UPSTREAM_IDLE_TIMEOUT_MS' | 'UPSTREAM_FIRST_TOKEN_TIMEOUT_MS' | undefined
      const expire = (knob: NonNullable<typeof timedOut>) => () => {
        timedOut = knob
        controller.abort()
      }
      const timeoutError = (knob: NonNullable<typeof timedOut>, cause?: unknown) => gatewayError('GW_ERR_PROVIDER_TIMEOUT',
        [knob, knob === 'UPSTREAM_IDLE_TIMEOUT_MS' ? options.idleTimeoutMs : options.firstTokenTimeoutMs ?? 0],
        { retryable: true, ...(cause === undefined ? {} : { cause }) })
      // One timer per stream, pushed back on every chunk (refresh() allocates nothing).
      const arm = () => {
        if (idle === undefined) idle = setTimeout(expire('UPSTREAM_IDLE_TIMEOUT_MS'), options.idleTimeoutMs)
        else idle.refresh()
      }
      let firstToken = options.firstTokenTimeoutMs === undefined ? undefined : setTimeout(expire('UPSTREAM_FIRST_TOKEN_TIMEOUT_MS'), options.firstTokenTimeoutMs)
      let reading = false
      try {
        // The SDK sends the request and turns an HTTP error into its APIError; the body is read
        // here (sse.ts), a network read at a time, with the SDK's rules for messages and errors.
        let response: Response
        try {
          response = await client.chat.completions.create(toParams(request, streamOptions), { signal: controller.signal }).asResponse()
        } catch (err) {
          if (!streamOptions || !refusesStreamOptions(err)) throw mapError(err, options.timeoutMs)
          streamOptions = false
          log.warn({ status: (err as { status?: number }).status }, 'upstream refuses stream_options; usage will be estimated')
          response = await client.chat.completions.create(toParams(request, false), { signal: controller.signal }).asResponse().catch((retryErr: unknown) => {
            throw mapError(retryErr, options.timeoutMs)
          })
        }
        const state = { openCalls: new Set<number>(), finished: false }
        const reader = textReader(response)
        if (reader === undefined) throw gatewayError('GW_ERR_PROVIDER_STREAM_INTERRUPTED', [], { retryable: true })
        reading = true
        const parser = new SseParser()
        let done = false
        try {
          arm()
          while (!done) {
            const text = await reader.read()
            arm()
            if (text === undefined) break
            for (const message of parser.push(text)) {
              if (message.data.startsWith('[DONE]')) {
                done = true
                break
              }
              for (const event of toEvents(toChunk(message, response), state)) {
                if (firstToken !== undefined && (event.type === 'text' || event.type === 'tool_call')) {
                  clearTimeout(firstToken)
                  firstToken = undefined
                }
                yield event
              }
            }
          }
          reading = false
        } catch (err) {
          // Cancelled (not timed out): the stream just ends, as the SDK's own iterator does.
          if (timedOut === undefined && !controller.signal.aborted) throw mapError(err, options.timeoutMs, true)
        }
        if (timedOut !== undefined) throw timeoutError(timedOut)
        if (!state.finished && !signal.aborted) throw gatewayError('GW_ERR_PROVIDER_STREAM_INTERRUPTED', [], { retryable: true })
      } catch (err) {
        // Aborted while connecting because a timer fired: report the timeout, not an abort.
        if (timedOut !== undefined && !signal.aborted && !(isGatewayError(err) && err.code === 'GW_ERR_PROVIDER_TIMEOUT')) throw timeoutError(timedOut, err)
        throw err
      } finally {
        // Left before the end (the consumer stopped, or an error): close the response body.
        if (reading) controller.abort()
        clearTimeout(idle)
        clearTimeout(firstToken)
        signal.removeEventListener('abort', forward)
      }
    }
  }
}

/** One streamed message as a chunk, or the upstream's in-stream error thrown as the SDK throws it. */
function toChunk (message: SseMessage, response: Response): ChatCompletionChunk {
  const data = JSON.parse(message.data) as (ChatCompletionChunk & { error?: object }) | null
  if (data?.error) throw new APIError(undefined, data.error, undefined, response.headers)
  return data as ChatCompletionChunk
}

/** Maps one chunk onto provider events; `state` carries what earlier chunks opened. */
function * toEvents (chunk: ChatCompletionChunk, state: { openCalls: Set<number>, finished: boolean }): Generator<ProviderEvent> {
  for (const choice of chunk.choices) {
    if (choice.index !== 0) continue
    const delta = choice.delta
    if (typeof delta.content === 'string' && delta.content !== '') yield { type: 'text', delta: delta.content }
    for (const call of delta.tool_calls ?? []) {
      if (!state.openCalls.has(call.index)) {
        state.openCalls.add(call.index)
        // Some compatible servers omit ids; the protocol needs a call_id, so make one.
        const callId = call.id ?? `call_${chunk.id.slice(-12)}_${call.index}`
        yield { type: 'tool_call', index: call.index, callId, name: call.function?.name ?? '' }
      }
      const args = call.function?.arguments
      if (args !== undefined && args !== '') yield { type: 'tool_call_arguments', index: call.index, delta: args }
    }
    if (choice.finish_reason !== null && choice.finish_reason !== undefined) {
      state.finished = true
      yield { type: 'finish', reason: toFinishReason(choice.finish_reason) }
    }
  }
  if (chunk.usage) {
    // Compatible servers are not always careful: anything but a whole count ≥ 0 counts as 0.
    const inputTokens = tokenCount(chunk.usage.prompt_tokens)
    const outputTokens = tokenCount(chunk.usage.completion_tokens)
    const cached = chunk.usage.prompt_tokens_details?.cached_tokens
    yield {
      type: 'usage',
      usage: {
        inputTokens,
        outputTokens,
        totalTokens: inputTokens + outputTokens,
        ...(cached === undefined ? {} : { cachedInputTokens: Math.min(tokenCount(cached), inputTokens) })
      }
    }
  }
}

function tokenCount (value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0 ? Math.floor(value) : 0
}

function toFinishReason (reason: string): FinishReason {
  if (reason === 'length' || reason === 'content_filter') return reason
  if (reason === 'tool_calls' || reason === 'function_call') return 'tool_calls'
  return 'stop'
}

function toParams (request: ModelRequest, streamOptions: boolean): ChatCompletionCreateParamsStreaming {
  return {
    model: request.model,
    messages: request.messages.map(toMessage),
    stream: true,
    ...(streamOptions ? { stream_options: { include_usage: true } } : {}),
    n: 1,
    ...(request.tools && request.tools.length > 0
      ? {
          tools: request.tools.map((tool): ChatCompletionTool => ({
            type: 'function',
            function: {
              name: tool.name,
              ...(tool.description === undefined ? {} : { description: tool.description }),
              ...(tool.parameters === undefined ? {} : { parameters: tool.parameters }),
              ...(tool.strict === undefined ? {} : { strict: tool.strict })
            }
          })),
          ...(request.toolChoice === undefined ? {} : { tool_choice: toToolChoice(request.toolChoice) }),
          ...(request.parallelToolCalls === undefined ? {} : { parallel_tool_calls: request.parallelToolCalls })
        }
      : {}),
    ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
    ...(request.maxOutputTokens === undefined ? {} : { max_completion_tokens: request.maxOutputTokens })
  }
}

function toToolChoice (choice: ChatToolChoice): ChatCompletionToolChoiceOption {
  return typeof choice === 'string' ? choice : { type: 'function', function: { name: choice.name } }
}

function toMessage (message: ChatMessage): ChatCompletionMessageParam {
  switch (message.role) {
    case 'system':
      return message
    case 'user':
      return {
        role: 'user',
        content: typeof message.content === 'string'
          ? message.content
          : message.content.map((part) => part.type === 'text'
            ? { type: 'text', text: part.text }
            : { type: 'image_url', image_url: { url: part.url, ...(part.detail === undefined ? {} : { detail: part.detail }) } })
      }
    case 'assistant':
      return {
        role: 'assistant',
        content: message.content,
        ...(message.toolCalls && message.toolCalls.length > 0
          ? { tool_calls: message.toolCalls.map((call) => ({ id: call.id, type: 'function' as const, function: { name: call.name, arguments: call.arguments } })) }
          : {})
      }
    case 'tool':
      return { role: 'tool', tool_call_id: message.toolCallId, content: message.content }
  }
}

/** A 400/422 that names `stream_options`: the upstream does not know the parameter. */
function refusesStreamOptions (err: unknown): boolean {
  return err instanceof OpenAI.APIError && (err.status === 400 || err.status === 422) && /stream_options/i.test(err.message)
}

/** Maps an SDK failure onto the registry. `midStream`: the stream had begun when it failed. */
function mapError (err: unknown, timeoutMs: number, midStream = false): GatewayError {
  if (isGatewayError(err)) return err
  if (err instanceof OpenAI.APIConnectionTimeoutError) {
    return gatewayError('GW_ERR_PROVIDER_TIMEOUT', ['UPSTREAM_TIMEOUT_MS', timeoutMs], { cause: err, retryable: true })
  }
  if (err instanceof OpenAI.APIError && err.status !== undefined) {
    const retryAfterMs = parseRetryAfter(err.headers)
    const details = { cause: err, retryable: err.status === 429 || err.status === 408 || err.status >= 500, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }
    if (err.status === 429) return gatewayError('GW_ERR_PROVIDER_RATE_LIMITED', [], details)
    if (err.status >= 500 || err.status === 408) return gatewayError('GW_ERR_PROVIDER_UNAVAILABLE', [], details)
    return gatewayError('GW_ERR_PROVIDER_REJECTED', [err.status], details)
  }
  if (midStream) return gatewayError('GW_ERR_PROVIDER_STREAM_INTERRUPTED', [], { cause: err, retryable: true })
  return gatewayError('GW_ERR_PROVIDER_UNAVAILABLE', [], { cause: err, retryable: true })
}

function parseRetryAfter (headers: Headers | undefined): number | undefined {
  const ms = headers?.get('retry-after-ms')
  if (ms != null && Number.isFinite(Number(ms))) return Number(ms)
  const value = headers?.get('retry-after')
  if (value == null) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds)) return seconds * 1000
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}
