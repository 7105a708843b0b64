/**
 * `current_time`: the date and time now, in UTC and in an IANA time zone, from Intl.DateTimeFormat
 * (so daylight saving time follows the runtime's time-zone data). The clock is injectable for tests.
 */
import { Type } from '@sinclair/typebox'
import { defineTool, type ServerTool } from '../registry.js'

export interface CurrentTime {
  /** The zone as asked for, in its canonical spelling (`utc` → `UTC`), e.g. `Europe/Oslo`. */
  readonly time_zone: string
  /** The instant in UTC, ISO 8601 (`2026-11-25T22:10:05.000Z`). */
  readonly iso: string
  /** Wall-clock time in the zone, `YYYY-MM-DD HH:mm:ss`. */
  readonly local: string
  /** The zone's offset from UTC at that instant, `+01:00`. */
  readonly utc_offset: string
}

/** The current time in `timeZone`; throws an Error naming the zone when it is not a known IANA zone. */
export function timeIn (timeZone: string, date: Date): CurrentTime {
  let format: Intl.DateTimeFormat
  try {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit'
    })
  } catch (err) {
    throw new Error(`unknown time zone ${JSON.stringify(timeZone)}: use an IANA name such as "Europe/Oslo" or "UTC"`, { cause: err })
  }
  const parts = new Map(format.formatToParts(date).map((part) => [part.type, part.value]))
  const field = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.get(type))
  const [year, month, day, hour, minute, second] = [field('year'), field('month'), field('day'), field('hour'), field('minute'), field('second')]
  // The offset is what the wall clock reads minus what UTC reads, to the minute.
  const utcSeconds = Math.floor(date.getTime() / 1000) * 1000
  const offsetMinutes = Math.round((Date.UTC(year, month - 1, day, hour, minute, second) - utcSeconds) / 60_000)
  // ICU may name a zone by an older alias (Asia/Kolkata → Asia/Calcutta): only its spelling is taken.
  const canonical = format.resolvedOptions().timeZone
  const pad = (n: number, width = 2): string => String(n).padStart(width, '0')
  return {
    time_zone: canonical.toLowerCase() === timeZone.toLowerCase() ? canonical : timeZone,
    iso: date.toISOString(),
    local: `${pad(year, 4)}-${pad(month)}-${pad(day)} ${pad(hour)}:${pad(minute)}:${pad(second)}`,
    utc_offset: `${offsetMinutes < 0 ? '-' : '+'}${pad(Math.floor(Math.abs(offsetMinutes) / 60))}:${pad(Math.abs(offsetMinutes) % 60)}`
  }
}

/** The `current_time` tool reading `now` (a fixed clock in tests). */
export function createCurrentTimeTool (now: () => Date = () => new Date()): ServerTool {
  return defineTool({
    name: 'current_time',
    description: 'Returns the current date and time: in UTC (ISO 8601) and as the wall clock reads in a time zone, with its UTC offset.',
    parameters: Type.Object({
      time_zone: Type.Optional(Type.String({ minLength: 1, maxLength: 64, default: 'UTC', description: 'IANA time zone, e.g. "Europe/Oslo". Default: UTC' }))
    }, { additionalProperties: false }),
    timeoutMs: 1000,
    async execute ({ time_zone: timeZone = 'UTC' }) {
      return timeIn(timeZone, now())
    }
  })
}

export const currentTime: ServerTool = createCurrentTimeTool()
