import { describe, expect, it } from 'vitest'
import { SseParser } from '../../src/providers/sse.js'

/** Feeds `pieces` one by one and returns every message completed. */
function parse (pieces: string[]): Array<{ event: string | null, data: string }> {
  const parser = new SseParser()
  return pieces.flatMap((piece) => parser.push(piece))
}

describe('SseParser', () => {
  it('reads data messages ended by a blank line, whatever the line ending', () => {
    const expected = [{ event: null, data: '{"a":1}' }, { event: null, data: '[DONE]' }]
    expect(parse(['data: {"a":1}\n\ndata: [DONE]\n\n'])).toEqual(expected)
    expect(parse(['data: {"a":1}\r\n\r\ndata: [DONE]\r\n\r\n'])).toEqual(expected)
    expect(parse(['data: {"a":1}\r\rdata: [DONE]\r\r'])).toEqual(expected)
  })

  it('keeps a line, and a CRLF, split across network reads', () => {
    const text = 'data: {"delta":"héllo"}\r\n\r\ndata: {"delta":"wörld"}\r\n\r\n'
    const whole = parse([text])
    for (let cut = 1; cut < text.length; cut++) expect(parse([text.slice(0, cut), text.slice(cut)])).toEqual(whole)
    expect(whole).toHaveLength(2)
  })

  it('joins data lines with LF, names events, skips comments and unknown fields, strips one space', () => {
    expect(parse([': keep-alive\n\nevent: error\ndata:  {"x":\ndata:1}\nid: 7\nretry: 10\n\n'])).toEqual([{ event: 'error', data: ' {"x":\n1}' }])
    expect(parse([': keep-alive\n\n: another\n\n'])).toEqual([])
    expect(parse(['event:\n\nevent: ping\n\n'])).toEqual([{ event: 'ping', data: '' }])
  })

  it('drops a message the stream ends before its blank line, as the SDK does', () => {
    const parser = new SseParser()
    expect(parser.push('data: {"a":1}\n')).toEqual([])
    expect(parser.push('')).toEqual([])
  })
})
