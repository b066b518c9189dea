// The HTTP engine's size limits, in one place: every byte the engine holds in memory (heads, a JSON
// body for the judge or for masking, a text line, a recorded body) is bounded by one of these.
import {DEFAULT_MAX_HEAD_BYTES} from '../../protocol/http/head.js'

export interface HttpLimits {
  /** Request and response heads. */
  maxHeadBytes: number
  /** JSON request bodies up to this size are parsed for the judge. */
  maxJsonRequestBytes: number
  /** JSON responses under a mask plan are buffered up to this size; larger ones get 502. */
  maxMaskedJsonBytes: number
  /** Body bytes kept in each recording entry. */
  maxRecordedBodyBytes: number
  /** A refused request's unread body is read and dropped up to this size; beyond it the connection closes. */
  maxDiscardBytes: number
  /** Text masking works per line; longer lines are cut. */
  maxTextLine: number
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxHeadBytes: DEFAULT_MAX_HEAD_BYTES,
  maxJsonRequestBytes: 1024 * 1024,
  maxMaskedJsonBytes: 32 * 1024 * 1024,
  maxRecordedBodyBytes: 64 * 1024,
  maxDiscardBytes: 1024 * 1024,
  maxTextLine: 1024 * 1024,
}
