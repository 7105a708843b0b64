/**
 * A deterministic generator of hostile client frames for the fuzz test: each frame comes with
 * the answer the gateway owes it (an `error` with a code and the client's event_id when it had a
 * readable one, the event a valid request produces, or a close code), so every frame can be
 * checked, not just survived. Same seed, same frames.
 */

/** What the gateway must answer to one frame. */
export type Expectation =
  /** An `error` event with this code; `eventId` is the client's event_id it must echo (null: none readable). */
  | { readonly kind: 'error', readonly code: string, readonly eventId: string | null }
  /** `conversation.item.added` and `conversation.item.done` for this item id. */
  | { readonly kind: 'item', readonly itemId: string }
  /** One `session.updated`. */
  | { readonly kind: 'session' }
  /** `conversation.item.retrieved` for this item id. */
  | { readonly kind: 'retrieved', readonly itemId: string }
  /** `conversation.item.deleted` for this item id. */
  | { readonly kind: 'deleted', readonly itemId: string }
  /** The socket is closed by the server with this code. */
  | { readonly kind: 'close', readonly code: number }

export interface FuzzFrame {
  /** The mutation that made it, for failure messages. */
  readonly label: string
  readonly data: string | Buffer
  readonly binary: boolean
  /** false: sent unmasked (a protocol violation for a client). */
  readonly mask?: false
  readonly expect: Expectation
}

/** What the generator knows of the conversation of the socket it generates for. */
export interface SocketModel {
  /** Items that exist in the conversation (created by earlier valid frames), by id. */
  readonly items: string[]
}

/** A small, fast, seeded PRNG (xorshift32 with a splitmix-style seed scramble). */
export function seededRandom (seed: number): () => number {
  let state = (Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) >>> 0) || 0x2545f491
  return () => {
    state ^= state << 13
    state >>>= 0
    state ^= state >>> 17
    state ^= state << 5
    state >>>= 0
    return state / 0x1_0000_0000
  }
}

const AUDIO_TYPES = ['input_audio_buffer.append', 'input_audio_buffer.commit', 'input_audio_buffer.clear', 'output_audio_buffer.clear', 'conversation.item.truncate']
/** Server event types, Realtime beta names and near misses: none is a client event here. */
const NOT_CLIENT_TYPES = ['response.created', 'session.created', 'conversation.item.added', 'error', 'RESPONSE.CREATE', 'response.create ', 'session.update\u0000', 'transcription_session.update', 'conversation.item.input_audio_transcription', '']

/** Code point ranges random text is drawn from: ASCII, Latin, Greek, Cyrillic, Arabic, Hebrew, CJK, emoji, combining marks, controls. */
const UNICODE_RANGES: ReadonlyArray<readonly [number, number]> = [
  [0x20, 0x7e], [0x20, 0x7e], [0xa0, 0x24f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ff], [0x600, 0x6ff],
  [0x300, 0x36f], [0x4e00, 0x9fff], [0xac00, 0xd7a3], [0x1f300, 0x1faff], [0x10000, 0x1000f], [0x0, 0x1f],
  [0x200b, 0x200f], [0x2028, 0x202e], [0xfff0, 0xffff]
]

export class FrameFuzzer {
  readonly #random: () => number
  readonly #prefix: string
  readonly #maxFrameBytes: number
  readonly #maxItemBytes: number
  #seq = 0

  /**
   * @param maxFrameBytes the gateway's MAX_FRAME_BYTES: frames meant to be answered stay under it
   * @param maxItemBytes the gateway's MAX_ITEM_BYTES
   */
  constructor (seed: number, options: { maxFrameBytes: number, maxItemBytes: number }) {
    this.#random = seededRandom(seed)
    this.#prefix = `fz${seed.toString(36)}`
    this.#maxFrameBytes = options.maxFrameBytes
    this.#maxItemBytes = options.maxItemBytes
  }

  /** [0, 1) */
  random (): number {
    return this.#random()
  }

  /** An integer in [min, max]. */
  int (min: number, max: number): number {
    return min + Math.floor(this.#random() * (max - min + 1))
  }

  /** An integer in [min, max], log-uniformly (small values as likely as large magnitudes). */
  logInt (min: number, max: number): number {
    return Math.min(max, Math.floor(Math.exp(Math.log(min) + this.#random() * (Math.log(max + 1) - Math.log(min)))))
  }

  pick<T> (values: readonly T[]): T {
    const value = values[Math.floor(this.#random() * values.length)]
    if (value === undefined) throw new Error('pick from an empty list')
    return value
  }

  /** A fresh client event_id. */
  eventId (): string {
    return `${this.#prefix}-${(this.#seq++).toString(36)}`
  }

  /** A fresh client item id (ItemId alphabet). */
  itemId (): string {
    return `${this.#prefix}_item_${(this.#seq++).toString(36)}`
  }

  /** Random text of `length` code points from many scripts, controls and (optionally) lone surrogates. */
  unicode (length: number, loneSurrogates = true): string {
    let text = ''
    for (let i = 0; i < length; i++) {
      if (loneSurrogates && this.#random() < 0.02) {
        text += String.fromCharCode(this.int(0xd800, 0xdfff))
        continue
      }
      const [low, high] = this.pick(UNICODE_RANGES)
      text += String.fromCodePoint(this.int(low, high))
    }
    return text
  }

  /** A frame the gateway answers without keeping state: safe in a flood (any may be refused as too_many_pending_events). */
  stateless (): FuzzFrame {
    const eventId = this.eventId()
    switch (this.int(0, 5)) {
      case 0: return this.#json('unknown type', { type: this.#unknownType(), event_id: eventId }, errorFor('unknown_event_type', eventId))
      case 1: return this.#json('audio event', { type: this.pick(AUDIO_TYPES), event_id: eventId, audio: 'AAAA' }, errorFor('audio_not_supported', eventId))
      case 2: return this.#json('response.cancel with nothing active', { type: 'response.cancel', event_id: eventId }, errorFor('response_cancel_not_active', eventId))
      case 3: return this.#json('retrieve of a missing item', { type: 'conversation.item.retrieve', event_id: eventId, item_id: this.itemId() }, errorFor('item_not_found', eventId))
      case 4: return this.#wrongType(eventId)
      default: return this.#extraField(eventId)
    }
  }

  /** Any frame that gets an answer and leaves the socket open. Updates `model` as valid frames would change the conversation. */
  next (model: SocketModel): FuzzFrame {
    const roll = this.#random()
    if (roll < 0.26) return this.stateless()
    if (roll < 0.36) return this.#anonymous()
    if (roll < 0.42) return this.#missingField(this.eventId())
    if (roll < 0.56) return this.#huge(this.eventId())
    if (roll < 0.62) return this.#longArray(this.eventId())
    if (roll < 0.70) return this.#deep(this.eventId())
    if (roll < 0.90) return this.#valid(model)
    return this.#conversational(model)
  }

  /** A frame after which the server must close the socket: invalid UTF-8, too big, or unmasked. */
  closing (): FuzzFrame {
    switch (this.int(0, 3)) {
      case 0:
      case 1: return { label: 'invalid UTF-8 in a text frame', data: this.#invalidUtf8(), binary: false, expect: { kind: 'close', code: 1007 } }
      case 2: {
        const size = this.logInt(this.#maxFrameBytes + 1, this.#maxFrameBytes * 5)
        const binary = this.#random() < 0.3
        const data = binary ? Buffer.alloc(size, 0x61) : JSON.stringify({ type: 'session.update', event_id: this.eventId(), session: { instructions: 'x'.repeat(size) } })
        return { label: `frame over MAX_FRAME_BYTES (${size} bytes${binary ? ', binary' : ''})`, data, binary, expect: { kind: 'close', code: 1009 } }
      }
      default: return { label: 'unmasked client frame', data: JSON.stringify({ type: 'response.cancel', event_id: this.eventId() }), binary: false, mask: false, expect: { kind: 'close', code: 1002 } }
    }
  }

  /** A valid user message with a client-chosen id. */
  userItem (text: string, eventId = this.eventId()): { frame: FuzzFrame, itemId: string } {
    const itemId = this.itemId()
    const event = { type: 'conversation.item.create', event_id: eventId, item: { id: itemId, type: 'message', role: 'user', content: [{ type: 'input_text', text }] } }
    return { frame: this.#json('valid user message', event, { kind: 'item', itemId }), itemId }
  }

  #unknownType (): string {
    const roll = this.#random()
    if (roll < 0.4) return this.pick(NOT_CLIENT_TYPES)
    if (roll < 0.7) return `x.${this.unicode(this.int(1, 40))}`
    const type = `conversation.${this.unicode(this.int(1, 8), false)}.create`
    return type === 'conversation.item.create' ? `${type}x` : type
  }

  /** A well-formed event of a known type whose one field has the wrong type or value. */
  #wrongType (eventId: string): FuzzFrame {
    const wrong = (): unknown => this.pick([42, -1, 3.5, true, null, [], [1, 2], {}, { nested: { x: 1 } }])
    const cases: Array<() => [string, Record<string, unknown>]> = [
      () => ['session.update: session not an object', { type: 'session.update', session: this.pick([42, 'x', [], null, true]) }],
      () => ['session.update: instructions not a string', { type: 'session.update', session: { instructions: this.pick([42, true, [], {}]) } }],
      () => ['session.update: temperature out of range', { type: 'session.update', session: { temperature: this.pick([-1, 2.5, 1e9, 'hot']) } }],
      () => ['session.update: max_output_tokens invalid', { type: 'session.update', session: { max_output_tokens: this.pick([0, -5, 1.5, 'lots', 2_000_000]) } }],
      () => ['session.update: tool_choice invalid', { type: 'session.update', session: { tool_choice: this.pick(['sometimes', 42, { type: 'function' }]) } }],
      () => ['session.update: tools not an array', { type: 'session.update', session: { tools: this.pick(['x', 1, { type: 'function' }]) } }],
      () => ['session.update: output_modalities invalid', { type: 'session.update', session: { output_modalities: this.pick([['video'], 'text', ['text', 'audio', 'text']]) } }],
      () => ['item.create: item not an object', { type: 'conversation.item.create', item: this.pick([42, 'x', null, [], true]) }],
      () => ['item.create: item.type unknown', { type: 'conversation.item.create', item: { type: this.pick(['video', 'reasoning', 42, '']), role: 'user', content: [] } }],
      () => ['item.create: role unknown', { type: 'conversation.item.create', item: { type: 'message', role: this.pick(['robot', 'tool', 7, '']), content: [{ type: 'input_text', text: 'x' }] } }],
      () => ['item.create: content not an array', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: this.pick(['hi', 5, { type: 'input_text', text: 'x' }]) } }],
      () => ['item.create: part type unknown', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: this.pick(['input_video', 'file', 9]), text: 'x' }] } }],
      () => ['item.create: text not a string', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: wrong() }] } }],
      () => ['item.create: part not allowed for role', { type: 'conversation.item.create', item: { type: 'message', role: this.pick(['user', 'system']), content: [{ type: 'output_text', text: 'x' }] } }],
      () => ['item.create: previous_item_id malformed', { type: 'conversation.item.create', previous_item_id: this.pick(['bad id!', 'x'.repeat(65), 42, '']), item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] } }],
      () => ['item.create: image url not allowed', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_image', image_url: this.pick(['file:///etc/passwd', 'javascript:alert(1)', 'ftp://x']) }] } }],
      () => ['item.retrieve: item_id malformed', { type: 'conversation.item.retrieve', item_id: this.pick([123, '', 'has space', 'x'.repeat(65), null]) }],
      () => ['item.delete: item_id malformed', { type: 'conversation.item.delete', item_id: this.pick([123, '', 'semi;colon', [], null]) }],
      () => ['response.create: response not an object', { type: 'response.create', response: this.pick(['go', 7, [], true]) }],
      () => ['response.create: conversation invalid', { type: 'response.create', response: { conversation: this.pick(['maybe', 1, null]) } }],
      () => ['response.create: max_output_tokens invalid', { type: 'response.create', response: { max_output_tokens: this.pick([0, -1, 'x', 1e12]) } }],
      () => ['response.create: temperature invalid', { type: 'response.create', response: { temperature: this.pick([-0.5, 3, 'warm']) } }],
      () => ['response.create: metadata invalid', { type: 'response.create', response: { metadata: this.pick([{ k: 5 }, 'x', [1], { k: 'v'.repeat(513) }]) } }],
      () => ['response.create: tools invalid', { type: 'response.create', response: { tools: this.pick([[{ type: 'function' }], 'x', [{ type: 'function', name: 'bad name!' }]]) } }],
      () => ['response.create: input entry invalid', { type: 'response.create', response: { conversation: 'none', input: [{ type: this.pick(['video', 42]) }] } }],
      () => ['response.cancel: response_id not a string', { type: 'response.cancel', response_id: this.pick([12, true, {}, []]) }],
      () => ['type not a string', { type: this.pick([42, null, true, ['session.update'], { t: 1 }]) }],
      () => ['missing type', { session: {} }]
    ]
    const [label, event] = this.pick(cases)()
    return this.#json(`wrong type: ${label}`, { ...event, event_id: eventId }, errorFor('invalid_value', eventId))
  }

  /** A valid event with one field that does not exist (the schemas are strict). */
  #extraField (eventId: string): FuzzFrame {
    const field = `zz_${this.unicode(this.int(1, 12), false)}`
    const value = this.pick<unknown>([1, 'x', null, [], { a: 1 }, this.unicode(20)])
    const bases: Array<[string, Record<string, unknown>]> = [
      ['top level', { type: 'response.cancel', [field]: value }],
      ['session', { type: 'session.update', session: { instructions: 'hi', [field]: value } }],
      ['item', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }], [field]: value } }],
      ['content part', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x', [field]: value }] } }],
      ['response', { type: 'response.create', response: { instructions: 'x', [field]: value } }]
    ]
    const [where, event] = this.pick(bases)
    return this.#json(`extra field in ${where}`, { ...event, event_id: eventId }, errorFor('invalid_value', eventId))
  }

  #missingField (eventId: string): FuzzFrame {
    const cases: Array<[string, Record<string, unknown>]> = [
      ['session.update without session', { type: 'session.update' }],
      ['item.create without item', { type: 'conversation.item.create' }],
      ['item without type', { type: 'conversation.item.create', item: { role: 'user', content: [] } }],
      ['message without role', { type: 'conversation.item.create', item: { type: 'message', content: [{ type: 'input_text', text: 'x' }] } }],
      ['message without content', { type: 'conversation.item.create', item: { type: 'message', role: 'user' } }],
      ['part without type', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ text: 'x' }] } }],
      ['input_text without text', { type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text' }] } }],
      ['function_call_output without call_id', { type: 'conversation.item.create', item: { type: 'function_call_output', output: 'x' } }],
      ['function_call without name', { type: 'conversation.item.create', item: { type: 'function_call', call_id: 'c1', arguments: '{}' } }],
      ['retrieve without item_id', { type: 'conversation.item.retrieve' }],
      ['delete without item_id', { type: 'conversation.item.delete' }]
    ]
    const [label, event] = this.pick(cases)
    return this.#json(`missing field: ${label}`, { ...event, event_id: eventId }, errorFor('invalid_value', eventId))
  }

  /** Frames without a readable event_id: not JSON, not an object, binary, an event_id that is not a string. */
  #anonymous (): FuzzFrame {
    const anon = (label: string, data: string, code = 'invalid_json'): FuzzFrame => ({ label, data, binary: false, expect: errorFor(code, null) })
    switch (this.int(0, 9)) {
      case 0: return anon('empty text frame', '')
      case 1: return anon('JSON scalar or array', this.pick(['null', 'true', 'false', '0', '-1e308', '"session.update"', '[]', '[{"type":"response.create"}]', '{}'.repeat(2)]))
      case 2: return anon('truncated JSON', JSON.stringify({ type: 'response.create', event_id: this.eventId() }).slice(0, this.int(1, 30)))
      case 3: return anon('unterminated string of random text', `{"${this.unicode(this.int(1, 300), false).replace(/["\\]/g, '')}`)
      case 4: {
        const depth = this.logInt(10, 10_000)
        return anon(`array nested ${depth} deep`, '['.repeat(depth) + ']'.repeat(depth))
      }
      case 5: return anon('JSON with trailing garbage', `${JSON.stringify({ type: 'response.cancel' })}}`)
      case 6: {
        const size = this.logInt(1, 4000)
        const bytes = Buffer.alloc(size)
        for (let i = 0; i < size; i++) bytes[i] = this.int(0, 255)
        return { label: `binary frame (${size} random bytes)`, data: bytes, binary: true, expect: errorFor('binary_not_supported', null) }
      }
      case 7: return { label: 'a valid event as a binary frame', data: Buffer.from(JSON.stringify({ type: 'response.cancel', event_id: this.eventId() })), binary: true, expect: errorFor('binary_not_supported', null) }
      case 8: return { label: 'empty binary frame', data: Buffer.alloc(0), binary: true, expect: errorFor('binary_not_supported', null) }
      default: {
        const eventId = this.pick<unknown>([42, null, true, [], { id: 'x' }, 1.5])
        return anon(`event_id of type ${Array.isArray(eventId) ? 'array' : eventId === null ? 'null' : typeof eventId}`, JSON.stringify({ type: 'response.cancel', event_id: eventId }), 'invalid_value')
      }
    }
  }

  /** Huge strings inside the frame limit: an unknown field, an over-long event_id, an item over MAX_ITEM_BYTES. */
  #huge (eventId: string): FuzzFrame {
    const room = this.#maxFrameBytes - 512
    switch (this.int(0, 3)) {
      case 0: {
        const size = this.int(room / 4, room)
        return this.#json(`huge unknown field (${size} bytes)`, { type: 'session.update', event_id: eventId, session: {}, zz_blob: 'y'.repeat(size) }, errorFor('invalid_value', eventId))
      }
      case 1: {
        const longId = `${eventId}-${'i'.repeat(this.int(257, 20_000))}`
        return this.#json(`event_id over 256 characters (${longId.length})`, { type: 'response.cancel', event_id: longId }, errorFor('invalid_value', longId))
      }
      case 2: {
        const size = this.int(this.#maxItemBytes + 1, room)
        const item = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'z'.repeat(size) }] }
        return this.#json(`item over MAX_ITEM_BYTES (${size} bytes of text)`, { type: 'conversation.item.create', event_id: eventId, item }, errorFor('item_too_large', eventId))
      }
      default: {
        // Multi-byte text, counted in bytes so the frame stays under the limit.
        let text = ''
        while (Buffer.byteLength(text) < room / 2) text += this.unicode(256, false)
        return this.#json(`huge random unicode in an unknown field (${Buffer.byteLength(text)} bytes)`, { type: 'response.cancel', event_id: eventId, zz_text: text }, errorFor('invalid_value', eventId))
      }
    }
  }

  #longArray (eventId: string): FuzzFrame {
    switch (this.int(0, 4)) {
      case 0: {
        const n = this.int(65, 1500)
        const content = Array.from({ length: n }, () => ({ type: 'input_text', text: '' }))
        return this.#json(`${n} content parts (max 64)`, { type: 'conversation.item.create', event_id: eventId, item: { type: 'message', role: 'user', content } }, errorFor('invalid_value', eventId))
      }
      case 1: {
        const n = this.int(129, 2000)
        return this.#json(`${n} session tools (max 128)`, { type: 'session.update', event_id: eventId, session: { tools: Array.from({ length: n }, () => ({ type: 'function' })) } }, errorFor('invalid_value', eventId))
      }
      case 2: {
        const n = this.int(1001, 8000)
        return this.#json(`${n} response inputs (max 1000)`, { type: 'response.create', event_id: eventId, response: { conversation: 'none', input: Array.from({ length: n }, () => ({})) } }, errorFor('invalid_value', eventId))
      }
      case 3: {
        const n = this.int(1000, 12_000)
        return this.#json(`${n} numbers in an unknown field`, { type: 'response.cancel', event_id: eventId, zz: Array.from({ length: n }, () => this.int(0, 9)) }, errorFor('invalid_value', eventId))
      }
      default: {
        // A valid long array: include has no bound.
        const n = this.int(500, 5000)
        return this.#json(`session.update with ${n} include entries (valid)`, { type: 'session.update', event_id: eventId, session: { include: Array.from({ length: n }, (_, i) => `i${i}`) } }, { kind: 'session' })
      }
    }
  }

  /** Objects nested 10 to 10,000 deep, built as text. Over MAX_JSON_DEPTH (64) the codec refuses them as invalid_json. */
  #deep (eventId: string): FuzzFrame {
    const depth = this.#random() < 0.3 ? this.int(10, 60) : this.logInt(70, 10_000)
    // The root is depth 1 and `session` depth 2, so `depth` objects inside it reach depth + 1.
    const nested = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth)
    const data = `{"type":"session.update","event_id":${JSON.stringify(eventId)},"session":${nested}}`
    const tooDeep = depth + 1 > 64
    return { label: `objects nested ${depth} deep`, data, binary: false, expect: errorFor(tooDeep ? 'invalid_json' : 'invalid_value', eventId) }
  }

  /** Valid events and their answers; item ids created here are added to the model. */
  #valid (model: SocketModel): FuzzFrame {
    const eventId = this.eventId()
    const roll = this.#random()
    if (roll < 0.45) {
      const itemId = this.itemId()
      const role = this.pick(['user', 'user', 'user', 'system', 'assistant'])
      const part = role === 'assistant' ? 'output_text' : 'input_text'
      const text = this.unicode(this.logInt(1, 400))
      const after = this.#random() < 0.2 && model.items.length > 0 ? { previous_item_id: this.pick([...model.items, 'root']) } : {}
      model.items.push(itemId)
      return this.#json(`valid ${role} message with random unicode`, { type: 'conversation.item.create', event_id: eventId, ...after, item: { id: itemId, type: 'message', role, content: [{ type: part, text }] } }, { kind: 'item', itemId })
    }
    if (roll < 0.75) {
      const session = this.pick<() => Record<string, unknown>>([
        () => ({ instructions: this.unicode(this.logInt(0, 2000)) }),
        () => ({ temperature: this.int(0, 20) / 10, max_output_tokens: this.pick([1, 100, 'inf']) }),
        () => ({ output_modalities: this.pick([['text'], ['audio'], ['text', 'audio']]), tool_choice: this.pick(['auto', 'none', 'required']) }),
        () => ({ tools: [{ type: 'function', name: `tool_${this.int(0, 999)}`, description: this.unicode(30), parameters: { type: 'object', properties: {} } }] }),
        () => ({ type: 'realtime', model: this.pick(['gpt-4o', 'gpt-4o-mini', 'gpt-realtime']), tracing: null, truncation: 'auto' })
      ])()
      return this.#json('valid session.update', { type: 'session.update', event_id: eventId, session }, { kind: 'session' })
    }
    if (roll < 0.9 && model.items.length > 0) {
      const itemId = this.pick(model.items)
      return this.#json('retrieve of an existing item', { type: 'conversation.item.retrieve', event_id: eventId, item_id: itemId }, { kind: 'retrieved', itemId })
    }
    if (model.items.length > 0) {
      const itemId = this.pick(model.items)
      model.items.splice(model.items.indexOf(itemId), 1)
      return this.#json('delete of an existing item', { type: 'conversation.item.delete', event_id: eventId, item_id: itemId }, { kind: 'deleted', itemId })
    }
    return this.#json('delete of a missing item', { type: 'conversation.item.delete', event_id: eventId, item_id: this.itemId() }, errorFor('item_not_found', eventId))
  }

  /** Well-formed events the conversation refuses: duplicates, unknown references. */
  #conversational (model: SocketModel): FuzzFrame {
    const eventId = this.eventId()
    const message = { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'x' }] }
    switch (this.int(0, 3)) {
      case 0:
        if (model.items.length > 0) {
          return this.#json('item with an id that exists', { type: 'conversation.item.create', event_id: eventId, item: { ...message, id: this.pick(model.items) } }, errorFor('item_already_exists', eventId))
        }
        return this.#json('previous_item_id unknown', { type: 'conversation.item.create', event_id: eventId, previous_item_id: this.itemId(), item: message }, errorFor('item_not_found', eventId))
      case 1: return this.#json('previous_item_id unknown', { type: 'conversation.item.create', event_id: eventId, previous_item_id: this.itemId(), item: message }, errorFor('item_not_found', eventId))
      case 2: return this.#json('function_call_output for an unknown call', { type: 'conversation.item.create', event_id: eventId, item: { type: 'function_call_output', call_id: `call_${this.int(0, 1e6)}`, output: this.unicode(20) } }, errorFor('tool_call_not_found', eventId))
      default: return this.#json('audio content part', { type: 'conversation.item.create', event_id: eventId, item: { type: 'message', role: 'user', content: [{ type: 'input_audio', audio: 'AAAA' }] } }, errorFor('audio_not_supported', eventId))
    }
  }

  #invalidUtf8 (): Buffer {
    const bad = this.pick([
      [0xff], [0xfe, 0xff], [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x82], [0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]
    ])
    const before = Buffer.from(JSON.stringify({ type: 'response.cancel', event_id: this.eventId() }).slice(0, this.int(0, 20)))
    return Buffer.concat([before, Buffer.from(bad), Buffer.from('"}')])
  }

  #json (label: string, event: unknown, expect: Expectation): FuzzFrame {
    const data = JSON.stringify(event)
    if (Buffer.byteLength(data) > this.#maxFrameBytes) throw new Error(`fuzzer bug: "${label}" is ${Buffer.byteLength(data)} bytes, over ${this.#maxFrameBytes}`)
    return { label, data, binary: false, expect }
  }
}

function errorFor (code: string, eventId: string | null): Expectation {
  return { kind: 'error', code, eventId }
}
