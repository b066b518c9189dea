// Masking for the server messages that carry text rather than rows. PostgreSQL echoes values in
// errors (a failed cast, a constraint's DETAIL, RAISE), notices, notifications, reported settings
// and fast-path function results, so a statement that reads a masked column could carry it out
// there. Each such message passes here before it reaches the client:
//
//   sensitive (the statement reads masked data, or the engine cannot tell) -> the fields that may
//     echo data are replaced by a fixed text that keeps the SQLSTATE and says hoop redacted it;
//   always -> the plan's value detectors run over every remaining text field.
//
// A message whose body does not parse is replaced too (never forwarded uninspected).
import {maskValue} from '../../masking/detectors.js'
import {addCount, type MaskCounts, type MaskEntity} from '../../masking/types.js'
import type {Frame} from '../../protocol/pg/framer.js'
import {B} from '../../protocol/pg/messages.js'
import {
  decodeFieldList,
  decodeNotification,
  decodeParameterStatus,
  encodeFieldList,
  encodeNotification,
  encodeNullFunctionResult,
  encodeParameterStatus,
  type FieldList,
} from '../../protocol/pg/notices.js'

/**
 * Error and notice fields that can hold data: message, detail, hint, context (where) and the
 * internal query. The others are severity, SQLSTATE, positions, object names and source location.
 * https://www.postgresql.org/docs/current/protocol-error-fields.html
 */
const DATA_FIELDS = new Set(['M', 'D', 'H', 'W', 'q'])

/** Reported settings a client can set to any text (so to a value it read). */
function freeTextSetting(name: string): boolean {
  return name === 'application_name' || name.includes('.')
}

export const REDACTED_TEXT = 'hoop: redacted (the statement reads masked data)'
const REDACTED_VALUE = '****'

export interface TextPolicy {
  /** Redact the fields that may echo data. */
  sensitive: boolean
  /** Value detectors to run on every text. */
  entities: readonly MaskEntity[]
  counts: MaskCounts
}

/** Runs the detectors over one text; counts what they found. */
function detect(text: string, p: TextPolicy): string {
  if (p.entities.length === 0 || text.length < 6) return text
  const d = maskValue(text, new Set(p.entities))
  if (!d) return text
  for (const [entity, n] of Object.entries(d.found)) addCount(p.counts, `entity:${entity}`, n ?? 0)
  return d.text
}

/** ErrorResponse or NoticeResponse. */
export function guardFields(f: Frame, p: TextPolicy): Buffer {
  const fields = decodeFieldList(f)
  if (!fields) return encodeFieldList(f.type, [['S', 'ERROR'], ['V', 'ERROR'], ['C', 'XX000'], ['M', `${REDACTED_TEXT}: a malformed message from the server`]])
  if (!p.sensitive && p.entities.length === 0) return f.bytes
  let changed = false
  const out: FieldList = fields.map(([code, value]) => {
    if (!DATA_FIELDS.has(code)) return [code, value]
    let v: string
    if (p.sensitive) {
      // The message keeps its place so clients still show something; the rest disappears.
      v = code === 'M' ? REDACTED_TEXT : ''
      if (v !== value) addCount(p.counts, `message:${code}`, 1)
    } else v = detect(value, p)
    if (v !== value) changed = true
    return [code, v]
  })
  if (!changed) return f.bytes
  return encodeFieldList(f.type, out.filter(([code, v]) => code === 'M' || v !== '' || !DATA_FIELDS.has(code)))
}

/** NotificationResponse: the payload may be any text a statement built (pg_notify(ch, email)). */
export function guardNotification(f: Frame, p: TextPolicy): Buffer {
  const n = decodeNotification(f)
  if (!n) return encodeNotification({pid: 0, channel: '', payload: REDACTED_VALUE})
  const payload = p.sensitive && n.payload !== '' ? REDACTED_VALUE : detect(n.payload, p)
  if (payload === n.payload) return f.bytes
  if (p.sensitive) addCount(p.counts, 'message:notification', 1)
  return encodeNotification({...n, payload})
}

/** ParameterStatus: application_name and custom settings can be set to a value that was read. */
export function guardParameterStatus(f: Frame, p: TextPolicy): Buffer {
  const s = decodeParameterStatus(f)
  if (!s) return encodeParameterStatus('hoop.redacted', REDACTED_VALUE)
  if (!freeTextSetting(s.name)) return f.bytes
  const value = p.sensitive && s.value !== '' ? REDACTED_VALUE : detect(s.value, p)
  if (value === s.value) return f.bytes
  if (p.sensitive) addCount(p.counts, 'message:parameter-status', 1)
  return encodeParameterStatus(s.name, value)
}

/** FunctionCallResponse: a fast-path function's result; opaque, so NULL when sensitive. */
export function guardFunctionResult(f: Frame, p: TextPolicy): Buffer {
  if (!p.sensitive) return f.bytes
  addCount(p.counts, 'message:function-result', 1)
  return encodeNullFunctionResult()
}

/** The guard for a server message type, or undefined when the type carries no text of this kind. */
export function textGuardFor(type: number): ((f: Frame, p: TextPolicy) => Buffer) | undefined {
  switch (type) {
    case B.ErrorResponse:
    case B.NoticeResponse:
      return guardFields
    case B.NotificationResponse:
      return guardNotification
    case B.ParameterStatus:
      return guardParameterStatus
    case B.FunctionCallResponse:
      return guardFunctionResult
    default:
      return undefined
  }
}
