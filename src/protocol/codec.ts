/**
 * The one place client frames are validated: JSON, event type, fields, items and their size.
 * decode() never throws: it returns the event, or the registry error to report (with the
 * client's event_id when one could be read).
 */
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { TSchema } from '@sinclair/typebox'
import { gatewayError, type GatewayError } from '../errors.js'
import { AudioEventTypes, ClientEventSchemas, ItemSchemas, ToolSchemas, type ClientEvent, type ItemInput, type OutgoingEvent } from './events.js'

export type DecodeResult =
  | { readonly ok: true, readonly event: ClientEvent }
  | { readonly ok: false, readonly error: GatewayError, readonly eventId?: string }

export interface CodecOptions {
  /** Largest single item, as UTF-8 JSON bytes (MAX_ITEM_BYTES). */
  readonly maxItemBytes: number
  /** Largest image, as decoded bytes of an input_image data URL (MAX_IMAGE_BYTES). */
  readonly maxImageBytes?: number
}

/** Deepest nesting of objects and arrays accepted in a client event. */
export const MAX_JSON_DEPTH = 64

export interface Codec {
  decode (data: string | Buffer, isBinary: boolean): DecodeResult
}

const compile = <T extends Record<string, TSchema>>(schemas: T) =>
  new Map(Object.entries(schemas).map(([key, schema]) => [key, TypeCompiler.Compile(schema)]))

const eventChecks: Map<string, TypeCheck<TSchema>> = compile(ClientEventSchemas)
const itemChecks: Map<string, TypeCheck<TSchema>> = compile(ItemSchemas)
const toolChecks: Map<string, TypeCheck<TSchema>> = compile(ToolSchemas)

/** Content part types each message role may carry (GA item shapes). */
const partsByRole: Record<string, ReadonlySet<string>> = {
  system: new Set(['input_text']),
  user: new Set(['input_text', 'input_image']),
  assistant: new Set(['output_text', 'text'])
}

/** Builds the codec once per app; schemas are compiled at module load. */
export function createCodec (options: CodecOptions): Codec {
  return {
    decode (data, isBinary) {
      if (isBinary) return { ok: false, error: gatewayError('GW_ERR_PROTOCOL_BINARY_FRAME') }
      let value: unknown
      try {
        value = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'))
      } catch (err) {
        return { ok: false, error: gatewayError('GW_ERR_PROTOCOL_INVALID_JSON', [(err as Error).message]) }
      }
      if (!isRecord(value)) return { ok: false, error: gatewayError('GW_ERR_PROTOCOL_INVALID_JSON', ['expected an object']) }
      const eventId = typeof value['event_id'] === 'string' ? value['event_id'] : undefined
      const fail = (error: GatewayError): DecodeResult => eventId === undefined ? { ok: false, error } : { ok: false, error, eventId }
      // Deeper nesting would cost the validator and every later JSON.stringify their stack.
      if (tooDeep(value, MAX_JSON_DEPTH)) return fail(gatewayError('GW_ERR_PROTOCOL_INVALID_JSON', [`nested deeper than ${MAX_JSON_DEPTH} levels`]))
      const type = value['type']
      if (typeof type !== 'string') return fail(invalid('event', '"type" must be a string', 'type'))
      if (AudioEventTypes.has(type)) return fail(gatewayError('GW_ERR_PROTOCOL_AUDIO_UNSUPPORTED', [type], { param: 'type' }))
      const check = eventChecks.get(type)
      if (check === undefined) return fail(gatewayError('GW_ERR_PROTOCOL_UNKNOWN_EVENT', [JSON.stringify(type.slice(0, 64))], { param: 'type' }))
      const schemaError = firstError(check, value, type)
      if (schemaError !== undefined) return fail(schemaError)

      const itemError = checkItems(value, type, options)
      if (itemError !== undefined) return fail(itemError)
      return { ok: true, event: value as unknown as ClientEvent }
    }
  }
}

/** Serialises a server event. Kept here so encoding has one owner. */
export function encode (event: OutgoingEvent & { event_id: string }): string {
  return JSON.stringify(event)
}

function checkItems (event: Record<string, unknown>, type: string, options: CodecOptions): GatewayError | undefined {
  if (type === 'conversation.item.create') return checkItem(event['item'], 'item', options)
  const session = event['session']
  if (type === 'session.update' && isRecord(session) && Array.isArray(session['tools'])) {
    for (const [index, tool] of session['tools'].entries()) {
      const error = checkTool(tool, `session.tools[${index}]`)
      if (error !== undefined) return error
    }
  }
  const response = event['response']
  if (type === 'response.create' && isRecord(response) && Array.isArray(response['input'])) {
    for (const [index, item] of response['input'].entries()) {
      const error = checkItem(item, `response.input[${index}]`, options)
      if (error !== undefined) return error
    }
  }
  return undefined
}

function checkTool (tool: unknown, path: string): GatewayError | undefined {
  const type = isRecord(tool) ? tool['type'] : undefined
  const check = typeof type === 'string' ? toolChecks.get(type) : undefined
  if (check === undefined) return invalid('session.update', 'a tool\'s "type" must be "function" or "mcp"', `${path}.type`)
  return firstError(check, tool, 'session.update', path)
}

function checkItem (item: unknown, path: string, options: CodecOptions): GatewayError | undefined {
  if (!isRecord(item) || typeof item['type'] !== 'string') return invalid('item', '"type" must be a string', `${path}.type`)
  const check = itemChecks.get(item['type'])
  if (check === undefined) {
    return invalid('item', `unsupported item type ${JSON.stringify(item['type'].slice(0, 64))} (message, function_call or function_call_output)`, `${path}.type`)
  }
  const schemaError = firstError(check, item, 'item', path)
  if (schemaError !== undefined) return schemaError
  const bytes = Buffer.byteLength(JSON.stringify(item))
  if (bytes > options.maxItemBytes) return gatewayError('GW_ERR_PROTOCOL_ITEM_TOO_LARGE', [bytes, options.maxItemBytes], { param: path })
  return item['type'] === 'message' ? checkMessageParts(item as ItemInput & { type: 'message' }, path, options) : undefined
}

function checkMessageParts (item: Extract<ItemInput, { type: 'message' }>, path: string, options: CodecOptions): GatewayError | undefined {
  const allowed = partsByRole[item.role] ?? new Set()
  for (const [index, part] of item.content.entries()) {
    const param = `${path}.content[${index}]`
    if (part.type === 'input_audio' || part.type === 'output_audio') {
      return gatewayError('GW_ERR_PROTOCOL_AUDIO_UNSUPPORTED', [`The content part type ${part.type}`], { param: `${param}.type` })
    }
    if (!allowed.has(part.type)) return invalid('item', `${item.role} messages cannot carry ${part.type} parts`, `${param}.type`)
    if (part.type === 'input_image') {
      if (part.image_url === undefined || !/^(data:image\/|https?:\/\/)/.test(part.image_url)) {
        return invalid('item', 'input_image needs image_url, an http(s) URL or a data:image/… URL', `${param}.image_url`)
      }
      const bytes = dataUrlBytes(part.image_url)
      if (options.maxImageBytes !== undefined && bytes > options.maxImageBytes) {
        return gatewayError('GW_ERR_PROTOCOL_IMAGE_TOO_LARGE', [bytes, options.maxImageBytes], { param: `${param}.image_url` })
      }
    } else if (part.text === undefined) {
      return invalid('item', `${part.type} needs text`, `${param}.text`)
    }
  }
  return undefined
}

/** Decoded size of a base64 data URL (0 for other URLs: the upstream fetches those itself). */
function dataUrlBytes (url: string): number {
  if (!url.startsWith('data:')) return 0
  const comma = url.indexOf(',')
  const meta = url.slice(5, comma)
  const payload = url.length - comma - 1
  if (!meta.endsWith(';base64')) return payload
  const padding = url.endsWith('==') ? 2 : url.endsWith('=') ? 1 : 0
  return Math.floor(payload * 3 / 4) - padding
}

/** Whether `value` nests objects or arrays deeper than `limit` (iterative: no stack to overflow). */
function tooDeep (value: unknown, limit: number): boolean {
  const stack: Array<[unknown, number]> = [[value, 1]]
  while (stack.length > 0) {
    const [node, depth] = stack.pop() as [unknown, number]
    if (typeof node !== 'object' || node === null) continue
    if (depth > limit) return true
    for (const child of Array.isArray(node) ? node : Object.values(node)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1])
    }
  }
  return false
}

function firstError (check: TypeCheck<TSchema>, value: unknown, what: string, prefix = ''): GatewayError | undefined {
  if (check.Check(value)) return undefined
  const error = check.Errors(value).First()
  const pointer = error?.path ?? ''
  const param = pointer.split('/').filter(Boolean)
    .reduce((path, segment) => /^\d+$/.test(segment) ? `${path}[${segment}]` : path === '' ? segment : `${path}.${segment}`, prefix)
  return invalid(what, `${param || 'event'}: ${error?.message ?? 'does not match the schema'}`, param)
}

function invalid (what: string, detail: string, param: string): GatewayError {
  return gatewayError('GW_ERR_PROTOCOL_INVALID_EVENT', [what, detail], { param })
}

function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
