/**
 * Server-side tools: the gateway runs these itself when the model calls them, instead of handing
 * the call to the client. A tool's arguments are parsed and validated here (ajv, against the JSON
 * Schema the model was shown) before `execute` sees them; every failure becomes a result the model
 * can read, so `ToolRegistry.call` never rejects.
 */
import { Ajv, type ErrorObject, type Options, type ValidateFunction } from 'ajv'
import { Ajv2019 } from 'ajv/dist/2019.js'
import { Ajv2020 } from 'ajv/dist/2020.js'
import type { Static, TSchema } from '@sinclair/typebox'

export interface ToolContext {
  /** Aborted when the response is cancelled or the tool times out. */
  readonly signal: AbortSignal
  readonly conversationId: string
  readonly tenant: string
}

export interface ServerTool {
  readonly name: string
  readonly description: string
  /** JSON Schema of the arguments object (as sent to the model). */
  readonly parameters: Record<string, unknown>
  readonly timeoutMs: number
  /** Runs with already-validated arguments; resolves the output text the model sees; may throw. */
  execute (args: unknown, context: ToolContext): Promise<string>
}

export interface ToolResult { readonly ok: boolean, readonly output: string }

/** The `error.code` of a failed `ToolResult`'s output. */
export type ToolErrorCode = 'unknown_tool' | 'invalid_json' | 'invalid_arguments' | 'timeout' | 'tool_failed' | 'cancelled'

/** Tool names the OpenAI function-calling API accepts. */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-]{1,64}$/

const DEFAULT_TIMEOUT_MS = 10_000
const MAX_ERROR_MESSAGE_CHARS = 500
const MAX_LISTED_ERRORS = 20

// Lenient on purpose: user schemas with unknown keywords or formats compile (formats are not checked).
// Defaults in the schema are filled into the arguments before the tool runs.
const AJV_OPTIONS: Options = { strict: false, allErrors: true, useDefaults: true, validateFormats: false, logger: false }

/**
 * Compiles a tool's parameters schema with ajv (draft-07 by default; 2019-09 and 2020-12 when its
 * `$schema` says so). Throws when ajv cannot compile it. Each schema gets its own ajv instance, so
 * two tools may reuse an `$id`.
 */
export function compileParameters<T = unknown> (parameters: Record<string, unknown>): ValidateFunction<T> {
  if (parameters['$async'] === true) throw new Error('$async schemas are not supported')
  const dialect = typeof parameters['$schema'] === 'string' ? parameters['$schema'] : ''
  const ajv = dialect.includes('/draft/2020-12/')
    ? new Ajv2020(AJV_OPTIONS)
    : dialect.includes('/draft/2019-09/') ? new Ajv2019(AJV_OPTIONS) : new Ajv(AJV_OPTIONS)
  return ajv.compile<T>(parameters)
}

/**
 * A typed way to write a tool in TypeScript: parameters as a TypeBox schema, execute gets Static<T>;
 * non-string results are JSON.stringify'd (`undefined` becomes the empty string).
 */
export function defineTool<T extends TSchema> (spec: {
  name: string
  description: string
  parameters: T
  timeoutMs?: number
  execute (args: Static<T>, context: ToolContext): Promise<unknown>
}): ServerTool {
  // TypeBox's promise: data that passes the JSON Schema `spec.parameters` is a Static<T>. The same ajv
  // settings as the registry's, so formats are ignored alike.
  let validate: ValidateFunction<Static<T>>
  try {
    validate = compileParameters<Static<T>>(spec.parameters)
  } catch (err) {
    throw new TypeError(`tool ${JSON.stringify(spec.name)}: invalid parameters schema: ${messageOf(err)}`, { cause: err })
  }
  return {
    name: spec.name,
    description: spec.description,
    parameters: spec.parameters,
    timeoutMs: spec.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    async execute (args, context) {
      // The registry validated `args` already; this guard keeps a direct caller honest too.
      if (!validate(args)) throw new TypeError(`the arguments do not match the parameters of ${spec.name}`)
      const result = await spec.execute(args, context)
      if (typeof result === 'string') return result
      const text: string | undefined = JSON.stringify(result)
      return text ?? ''
    }
  }
}

interface Entry { readonly tool: ServerTool, readonly validate: ValidateFunction }

export class ToolRegistry {
  readonly #entries = new Map<string, Entry>()
  readonly #tools: readonly ServerTool[]

  /** Throws a TypeError naming the tool on duplicate names or an invalid parameters schema (compile each with ajv once). */
  constructor (tools: readonly ServerTool[]) {
    for (const tool of tools) {
      const label = `tool ${JSON.stringify(tool.name)}`
      if (!TOOL_NAME_PATTERN.test(tool.name)) throw new TypeError(`${label}: the name must match ${String(TOOL_NAME_PATTERN)}`)
      if (this.#entries.has(tool.name)) throw new TypeError(`${label} is registered twice`)
      if (!Number.isInteger(tool.timeoutMs) || tool.timeoutMs < 1) throw new TypeError(`${label}: timeoutMs must be a positive whole number`)
      if (typeof tool.parameters !== 'object' || tool.parameters === null || Array.isArray(tool.parameters)) {
        throw new TypeError(`${label}: parameters must be a JSON Schema object`)
      }
      let validate: ValidateFunction
      try {
        validate = compileParameters(tool.parameters)
      } catch (err) {
        throw new TypeError(`${label}: invalid parameters schema: ${messageOf(err)}`, { cause: err })
      }
      this.#entries.set(tool.name, { tool, validate })
    }
    this.#tools = Object.freeze([...tools])
  }

  get (name: string): ServerTool | undefined {
    return this.#entries.get(name)?.tool
  }

  has (name: string): boolean {
    return this.#entries.has(name)
  }

  list (): readonly ServerTool[] {
    return this.#tools
  }

  /**
   * Parses `argumentsJson`, validates it against the tool's schema (ajv, allErrors), runs the tool with
   * its timeout (AbortSignal.any of context.signal and a timeout signal), and NEVER rejects: failures become
   * `{ ok: false, output: JSON.stringify({ error: { code, message } }) }` with code one of
   * 'unknown_tool', 'invalid_json', 'invalid_arguments' (message lists the ajv errors with paths), 'timeout'
   * (message names the tool's timeout in ms), 'tool_failed' (message: the error's message, truncated to 500 chars), 'cancelled'.
   * Empty (or all-whitespace) `argumentsJson` counts as `{}`, as some upstreams send it for argument-less calls.
   */
  async call (name: string, argumentsJson: string, context: ToolContext): Promise<ToolResult> {
    const entry = this.#entries.get(name)
    if (entry === undefined) {
      const known = [...this.#entries.keys()].join(', ') || 'none'
      return failure('unknown_tool', `There is no tool named ${JSON.stringify(truncate(name, 100))}; available: ${known}`)
    }
    const { tool, validate } = entry
    let args: unknown
    try {
      args = argumentsJson.trim() === '' ? {} : JSON.parse(argumentsJson)
    } catch (err) {
      return failure('invalid_json', truncate(`The arguments of ${tool.name} are not valid JSON: ${messageOf(err)}`, MAX_ERROR_MESSAGE_CHARS))
    }
    if (!validate(args)) {
      return failure('invalid_arguments', `Invalid arguments for ${tool.name}: ${describeErrors(validate.errors ?? [])}`)
    }
    if (context.signal.aborted) return cancelled(tool)
    return await run(tool, args, context)
  }
}

/** Runs the tool until it settles, the context is aborted or its timeout fires, whichever comes first. */
async function run (tool: ServerTool, args: unknown, context: ToolContext): Promise<ToolResult> {
  const timeout = new AbortController()
  const signal = AbortSignal.any([context.signal, timeout.signal])
  const timer = setTimeout(() => {
    timeout.abort(new DOMException(`${tool.name} timed out after ${tool.timeoutMs} ms`, 'TimeoutError'))
  }, tool.timeoutMs)
  const aborted = (): ToolResult => context.signal.aborted
    ? cancelled(tool)
    : failure('timeout', `${tool.name} did not finish within its timeout of ${tool.timeoutMs} ms`)
  // A tool that ignores its signal must not hold the response: the abort settles the call at once.
  let onAbort = (): void => {}
  const abort = new Promise<ToolResult>((resolve) => {
    onAbort = () => resolve(aborted())
    signal.addEventListener('abort', onAbort, { once: true })
  })
  const execution = (async (): Promise<ToolResult> => {
    try {
      return { ok: true, output: await tool.execute(args, { signal, conversationId: context.conversationId, tenant: context.tenant }) }
    } catch (err) {
      return signal.aborted ? aborted() : failure('tool_failed', truncate(messageOf(err), MAX_ERROR_MESSAGE_CHARS))
    }
  })()
  try {
    return await Promise.race([execution, abort])
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
  }
}

function cancelled (tool: ServerTool): ToolResult {
  return failure('cancelled', `The call to ${tool.name} was cancelled`)
}

function failure (code: ToolErrorCode, message: string): ToolResult {
  return { ok: false, output: JSON.stringify({ error: { code, message } }) }
}

/** `arguments/query must be string; arguments must have required property 'limit'` */
function describeErrors (errors: readonly ErrorObject[]): string {
  const lines = errors.slice(0, MAX_LISTED_ERRORS).map((e) => {
    const extra = typeof e.params['additionalProperty'] === 'string' ? ` (${JSON.stringify(e.params['additionalProperty'])})` : ''
    return `arguments${e.instancePath} ${e.message ?? `fails ${e.keyword}`}${extra}`
  })
  if (errors.length > MAX_LISTED_ERRORS) lines.push(`and ${errors.length - MAX_LISTED_ERRORS} more`)
  return lines.join('; ')
}

function messageOf (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

function truncate (text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`
}
