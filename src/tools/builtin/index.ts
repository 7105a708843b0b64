/** The tools the gateway ships with; BUILTIN_TOOLS picks which of them the model is offered. */
import type { ServerTool } from '../registry.js'
import { calculate } from './calculator.js'
import { currentTime } from './current-time.js'

export const builtinTools: readonly ServerTool[] = Object.freeze([currentTime, calculate])
