import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { describe, expect, it, vi } from 'vitest'
import { builtinTools } from '../../src/tools/builtin/index.js'
import { calculate, CalculationError, evaluate, MAX_NESTING } from '../../src/tools/builtin/calculator.js'
import { createCurrentTimeTool, currentTime, timeIn } from '../../src/tools/builtin/current-time.js'
import { ToolRegistry, type ToolContext, type ToolResult } from '../../src/tools/registry.js'

const context: ToolContext = { signal: new AbortController().signal, conversationId: 'conv_test', tenant: 'acme' }

const FailureOutput = Type.Object({ error: Type.Object({ code: Type.String(), message: Type.String() }) })

function errorOf (result: ToolResult): { code: string, message: string } {
  expect(result.ok).toBe(false)
  const parsed: unknown = JSON.parse(result.output)
  if (!Value.Check(FailureOutput, parsed)) throw new Error(`not a failure output: ${result.output}`)
  return parsed.error
}

function outputOf (result: ToolResult): unknown {
  expect(result).toMatchObject({ ok: true })
  return JSON.parse(result.output)
}

describe('builtinTools', () => {
  it('holds current_time and calculate, and they register', () => {
    expect(builtinTools.map((tool) => tool.name)).toEqual(['current_time', 'calculate'])
    expect(new ToolRegistry(builtinTools).list()).toHaveLength(2)
    expect(builtinTools).toContain(currentTime)
    expect(builtinTools).toContain(calculate)
  })
})

describe('calculate', () => {
  const registry = new ToolRegistry([calculate])
  const call = async (expression: string): Promise<ToolResult> => await registry.call('calculate', JSON.stringify({ expression }), context)

  it('returns the expression and its result', async () => {
    expect(outputOf(await call('1 + 2 * 3'))).toEqual({ expression: '1 + 2 * 3', result: 7 })
  })

  it('follows precedence and parentheses', () => {
    expect(evaluate('1 + 2 * 3')).toBe(7)
    expect(evaluate('(1 + 2) * 3')).toBe(9)
    expect(evaluate('10 - 4 - 3')).toBe(3)
    expect(evaluate('100 / 10 / 5')).toBe(2)
    expect(evaluate('7 % 4 * 2')).toBe(6)
    expect(evaluate('2 * 3 ^ 2')).toBe(18)
  })

  it('makes ^ right-associative and bind tighter than unary minus', () => {
    expect(evaluate('2 ^ 3 ^ 2')).toBe(512)
    expect(evaluate('(2 ^ 3) ^ 2')).toBe(64)
    expect(evaluate('-2 ^ 2')).toBe(-4)
    expect(evaluate('2 ^ -1')).toBe(0.5)
  })

  it('handles unary signs', () => {
    expect(evaluate('-3 + 5')).toBe(2)
    expect(evaluate('--3')).toBe(3)
    expect(evaluate('+-+3')).toBe(-3)
    expect(evaluate('4 * -(1 + 1)')).toBe(-8)
  })

  it('reads decimals and exponents', () => {
    expect(evaluate('1e3')).toBe(1000)
    expect(evaluate('2.5E-1')).toBe(0.25)
    expect(evaluate('.5 + 1.')).toBe(1.5)
    expect(evaluate('0.1 + 0.2')).toBe(0.3)
    expect(evaluate('1.1 * 3')).toBe(3.3)
    expect(evaluate('1 / 3')).toBe(1 / 3)
    expect(evaluate('9007199254740993')).toBe(9007199254740992)
    expect(Object.is(evaluate('-0'), 0)).toBe(true)
  })

  it('knows pi, e and its functions', () => {
    expect(evaluate('pi')).toBe(Math.PI)
    expect(evaluate('log(e)')).toBe(1)
    expect(evaluate('sqrt(16) + abs(-2)')).toBe(6)
    expect(evaluate('round(2.5) + floor(2.7) + ceil(2.1)')).toBe(8)
    expect(evaluate('min(4, 2, 8) + max(4, 2, 8)')).toBe(10)
    expect(evaluate('log10(1000)')).toBe(3)
    expect(evaluate('sin(0) + cos(0) + tan(0)')).toBe(1)
    expect(evaluate('sin(pi / 2)')).toBe(1)
    expect(evaluate('max(1, min(2, 3) ^ 2)')).toBe(4)
  })

  it.each([
    ['unknown name', 'foo + 1', /unknown name "foo" at column 1/],
    ['division by zero', '1 / (2 - 2)', /division by zero at column 3/],
    ['remainder by zero', '5 % 0', /division by zero/],
    ['a non-finite result', '10 ^ 400', /does not give a finite number/],
    ['a non-finite literal', '1e999', /does not give a finite number/],
    ['NaN', 'sqrt(-1)', /sqrt\(-1\) does not give a finite number/],
    ['log of zero', 'log(0)', /does not give a finite number/],
    ['trailing input', '2 3', /unexpected "3" at column 3/],
    ['a trailing parenthesis', '(1 + 2))', /unexpected "\)" at column 8/],
    ['an unclosed parenthesis', '(1 + 2', /expected "\)" .* found the end of the expression/],
    ['an empty expression', ' ', /found the end of the expression/],
    ['a dangling operator', '1 +', /found the end of the expression/],
    ['a function without a call', 'sqrt + 1', /sqrt is a function/],
    ['a constant called', 'pi(2)', /pi is a constant/],
    ['a wrong argument count', 'sqrt(1, 2)', /sqrt takes 1 argument, got 2/],
    ['no arguments', 'max()', /expected a number, name or "\("/],
    ['an unknown character', '2 & 3', /unexpected character "&" at column 3/],
    ['implicit multiplication', '2pi', /unexpected "pi"/]
  ])('rejects %s', (_what, expression, message) => {
    expect(() => evaluate(expression)).toThrow(CalculationError)
    expect(() => evaluate(expression)).toThrow(message)
  })

  it(`allows ${MAX_NESTING} levels of nesting and refuses deeper`, () => {
    expect(evaluate(`${'('.repeat(MAX_NESTING)}1${')'.repeat(MAX_NESTING)}`)).toBe(1)
    expect(() => evaluate(`${'('.repeat(MAX_NESTING + 1)}1${')'.repeat(MAX_NESTING + 1)}`)).toThrow(/nests deeper than 64/)
    expect(() => evaluate(`${'-'.repeat(MAX_NESTING + 1)}1`)).toThrow(/nests deeper than 64/)
    expect(() => evaluate(`${'sqrt('.repeat(MAX_NESTING + 1)}1${')'.repeat(MAX_NESTING + 1)}`)).toThrow(/nests deeper than 64/)
  })

  it('never executes code', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation(() => undefined as never)
    try {
      for (const expression of ['process.exit()', 'process', 'constructor', 'constructor.constructor("return process")()', '__proto__', 'toString()', 'valueOf', 'this', 'globalThis', 'require("fs")', 'eval("1")', 'Function("return 1")()', '`1`', '1; 2']) {
        expect(() => evaluate(expression), expression).toThrow(CalculationError)
        expect(errorOf(await call(expression)).code).toBe('tool_failed')
      }
      expect(exit).not.toHaveBeenCalled()
    } finally {
      exit.mockRestore()
    }
  })

  it('turns errors into tool_failed and a too-long expression into invalid_arguments', async () => {
    expect(errorOf(await call('1 / 0'))).toEqual({ code: 'tool_failed', message: 'division by zero at column 3' })
    expect(errorOf(await call(`1${'+1'.repeat(250)}`)).code).toBe('invalid_arguments')
    expect(() => evaluate(`1${'+1'.repeat(250)}`)).toThrow(/longer than 500 characters/)
    expect(outputOf(await call(`1${'+1'.repeat(249)}`))).toMatchObject({ result: 250 })
  })
})

describe('current_time', () => {
  // 2026-11-25 22:10:05 UTC is winter in Oslo (+01:00); 2026-07-01 12:00 UTC is summer (+02:00).
  const winter = new Date('2026-11-25T22:10:05Z')
  const summer = new Date('2026-07-01T12:00:00Z')

  it('reports the time in a zone and UTC, with the offset', async () => {
    const registry = new ToolRegistry([createCurrentTimeTool(() => winter)])
    expect(outputOf(await registry.call('current_time', '{"time_zone":"Europe/Oslo"}', context))).toEqual({
      time_zone: 'Europe/Oslo',
      iso: '2026-11-25T22:10:05.000Z',
      local: '2026-11-25 23:10:05',
      utc_offset: '+01:00'
    })
  })

  it('defaults to UTC', async () => {
    const registry = new ToolRegistry([createCurrentTimeTool(() => winter)])
    expect(outputOf(await registry.call('current_time', '{}', context))).toEqual({
      time_zone: 'UTC', iso: '2026-11-25T22:10:05.000Z', local: '2026-11-25 22:10:05', utc_offset: '+00:00'
    })
  })

  it('follows daylight saving time and negative and half-hour offsets', () => {
    expect(timeIn('Europe/Oslo', summer)).toMatchObject({ local: '2026-07-01 14:00:00', utc_offset: '+02:00' })
    expect(timeIn('America/New_York', summer)).toMatchObject({ local: '2026-07-01 08:00:00', utc_offset: '-04:00' })
    expect(timeIn('America/New_York', winter)).toMatchObject({ local: '2026-11-25 17:10:05', utc_offset: '-05:00' })
    expect(timeIn('Asia/Kolkata', winter)).toMatchObject({ time_zone: 'Asia/Kolkata', local: '2026-11-26 03:40:05', utc_offset: '+05:30' })
    expect(timeIn('utc', winter).time_zone).toBe('UTC')
    expect(timeIn('Europe/Oslo', new Date('2026-01-01T00:00:00Z')).local).toBe('2026-01-01 01:00:00')
    expect(timeIn('Europe/London', new Date('2026-06-30T23:30:00Z')).local).toBe('2026-07-01 00:30:00')
  })

  it('reports an unknown zone as tool_failed with a clear message', async () => {
    const registry = new ToolRegistry([createCurrentTimeTool(() => winter)])
    const error = errorOf(await registry.call('current_time', '{"time_zone":"Mars/Olympus_Mons"}', context))
    expect(error).toEqual({ code: 'tool_failed', message: 'unknown time zone "Mars/Olympus_Mons": use an IANA name such as "Europe/Oslo" or "UTC"' })
  })

  it('reads the real clock by default', async () => {
    const before = Date.now()
    const output = outputOf(await new ToolRegistry([currentTime]).call('current_time', '{}', context))
    if (!Value.Check(Type.Object({ iso: Type.String() }), output)) throw new Error('no iso field')
    expect(Date.parse(output.iso)).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000)
  })
})
