// MySQL / MariaDB wire constants: capability flags, commands, status flags, column types, and the
// server error numbers the gateway answers with.
// https://dev.mysql.com/doc/dev/mysql-server/latest/group__group__cs__capabilities__flags.html
// https://mariadb.com/kb/en/connection/#capabilities

/** Capability flags (the 32-bit word exchanged in the handshake). */
export const CAP = {
  LONG_PASSWORD: 0x1, // MariaDB: CLIENT_MYSQL (clear = the peer speaks MariaDB extended capabilities, MARIADB_CAP)
  FOUND_ROWS: 0x2,
  LONG_FLAG: 0x4,
  CONNECT_WITH_DB: 0x8,
  NO_SCHEMA: 0x10,
  COMPRESS: 0x20,
  ODBC: 0x40,
  LOCAL_FILES: 0x80,
  IGNORE_SPACE: 0x100,
  PROTOCOL_41: 0x200,
  INTERACTIVE: 0x400,
  SSL: 0x800,
  IGNORE_SIGPIPE: 0x1000,
  TRANSACTIONS: 0x2000,
  RESERVED: 0x4000,
  SECURE_CONNECTION: 0x8000,
  MULTI_STATEMENTS: 0x10000,
  MULTI_RESULTS: 0x20000,
  PS_MULTI_RESULTS: 0x40000,
  PLUGIN_AUTH: 0x80000,
  CONNECT_ATTRS: 0x100000,
  PLUGIN_AUTH_LENENC_CLIENT_DATA: 0x200000,
  CAN_HANDLE_EXPIRED_PASSWORDS: 0x400000,
  SESSION_TRACK: 0x800000,
  DEPRECATE_EOF: 0x1000000,
  OPTIONAL_RESULTSET_METADATA: 0x2000000,
  ZSTD_COMPRESSION: 0x4000000,
  QUERY_ATTRIBUTES: 0x8000000,
  MULTI_FACTOR_AUTHENTICATION: 0x10000000,
  SSL_VERIFY_SERVER_CERT: 0x40000000,
  REMEMBER_OPTIONS: 0x80000000,
} as const

/**
 * What the gateway can carry. Left out on purpose: SSL (the client link is inside the tunnel),
 * COMPRESS/ZSTD (we must read every packet), LOCAL_FILES (LOAD DATA LOCAL would stream client files
 * past statement policy), OPTIONAL_RESULTSET_METADATA (we need column definitions to mask),
 * QUERY_ATTRIBUTES (changes the COM_QUERY layout), MULTI_FACTOR_AUTHENTICATION.
 */
export const GATEWAY_CAPS =
  CAP.LONG_PASSWORD |
  CAP.FOUND_ROWS |
  CAP.LONG_FLAG |
  CAP.CONNECT_WITH_DB |
  CAP.NO_SCHEMA |
  CAP.ODBC |
  CAP.IGNORE_SPACE |
  CAP.PROTOCOL_41 |
  CAP.INTERACTIVE |
  CAP.IGNORE_SIGPIPE |
  CAP.TRANSACTIONS |
  CAP.RESERVED |
  CAP.SECURE_CONNECTION |
  CAP.MULTI_STATEMENTS |
  CAP.MULTI_RESULTS |
  CAP.PS_MULTI_RESULTS |
  CAP.PLUGIN_AUTH |
  CAP.CONNECT_ATTRS |
  CAP.PLUGIN_AUTH_LENENC_CLIENT_DATA |
  CAP.SESSION_TRACK |
  CAP.DEPRECATE_EOF

/**
 * MariaDB extended capabilities: the high 32 bits of MariaDB's 64-bit flags, carried in the last 4
 * filler bytes of the greeting and of the HandshakeResponse when CLIENT_MYSQL (bit 0) is clear.
 * https://mariadb.com/kb/en/connection/#capabilities
 */
export const MARIADB_CAP = {
  PROGRESS: 0x1, // progress reports (ERR packets with code 0xFFFF) while a statement runs
  COM_MULTI: 0x2, // withdrawn
  STMT_BULK_OPERATIONS: 0x4, // COM_STMT_BULK_EXECUTE
  EXTENDED_METADATA: 0x8, // column definitions carry the data type and format names (json, point, uuid, ...)
  CACHE_METADATA: 0x10, // COM_STMT_EXECUTE may omit column definitions the client has cached
  BULK_UNIT_RESULTS: 0x20, // one result per row of a bulk execute
} as const

/**
 * MariaDB extended capabilities the gateway carries, both links alike. PROGRESS: the engine relays
 * progress reports inside a response. EXTENDED_METADATA: column definitions are parsed with their
 * extended part. Left out: STMT_BULK_OPERATIONS (COM_STMT_BULK_EXECUTE is not modelled: drivers fall
 * back to COM_STMT_EXECUTE), CACHE_METADATA (masking needs every result's column definitions),
 * BULK_UNIT_RESULTS (only with bulk operations), COM_MULTI (withdrawn by MariaDB).
 */
export const GATEWAY_MARIADB_CAPS = MARIADB_CAP.PROGRESS | MARIADB_CAP.EXTENDED_METADATA

/** Error code of a MariaDB progress report (an ERR packet that does not end the response). */
export const PROGRESS_REPORT_CODE = 0xffff

/** Command bytes (first payload byte of a client command packet). */
export const COM = {
  SLEEP: 0x00,
  QUIT: 0x01,
  INIT_DB: 0x02,
  QUERY: 0x03,
  FIELD_LIST: 0x04,
  CREATE_DB: 0x05,
  DROP_DB: 0x06,
  REFRESH: 0x07,
  SHUTDOWN: 0x08,
  STATISTICS: 0x09,
  PROCESS_INFO: 0x0a,
  CONNECT: 0x0b,
  PROCESS_KILL: 0x0c,
  DEBUG: 0x0d,
  PING: 0x0e,
  TIME: 0x0f,
  DELAYED_INSERT: 0x10,
  CHANGE_USER: 0x11,
  BINLOG_DUMP: 0x12,
  TABLE_DUMP: 0x13,
  CONNECT_OUT: 0x14,
  REGISTER_SLAVE: 0x15,
  STMT_PREPARE: 0x16,
  STMT_EXECUTE: 0x17,
  STMT_SEND_LONG_DATA: 0x18,
  STMT_CLOSE: 0x19,
  STMT_RESET: 0x1a,
  SET_OPTION: 0x1b,
  STMT_FETCH: 0x1c,
  DAEMON: 0x1d,
  BINLOG_DUMP_GTID: 0x1e,
  RESET_CONNECTION: 0x1f,
} as const

/** Server status flags (OK / EOF packets). */
export const STATUS = {
  IN_TRANS: 0x1,
  AUTOCOMMIT: 0x2,
  MORE_RESULTS_EXISTS: 0x8,
  CURSOR_EXISTS: 0x40,
  LAST_ROW_SENT: 0x80,
  /** SERVER_STATUS_NO_BACKSLASH_ESCAPES: the session's sql_mode has NO_BACKSLASH_ESCAPES. */
  NO_BACKSLASH_ESCAPES: 0x200,
} as const

/** Column types (protocol_binary::field_types). */
export const TYPE = {
  DECIMAL: 0x00,
  TINY: 0x01,
  SHORT: 0x02,
  LONG: 0x03,
  FLOAT: 0x04,
  DOUBLE: 0x05,
  NULL: 0x06,
  TIMESTAMP: 0x07,
  LONGLONG: 0x08,
  INT24: 0x09,
  DATE: 0x0a,
  TIME: 0x0b,
  DATETIME: 0x0c,
  YEAR: 0x0d,
  NEWDATE: 0x0e,
  VARCHAR: 0x0f,
  BIT: 0x10,
  TIMESTAMP2: 0x11,
  DATETIME2: 0x12,
  TIME2: 0x13,
  VECTOR: 0xf2,
  JSON: 0xf5,
  NEWDECIMAL: 0xf6,
  ENUM: 0xf7,
  SET: 0xf8,
  TINY_BLOB: 0xf9,
  MEDIUM_BLOB: 0xfa,
  LONG_BLOB: 0xfb,
  BLOB: 0xfc,
  VAR_STRING: 0xfd,
  STRING: 0xfe,
  GEOMETRY: 0xff,
} as const

/** Types whose values are character or byte strings: masked as '****', scanned by detectors. */
export const STRING_TYPES: ReadonlySet<number> = new Set([
  TYPE.VARCHAR,
  TYPE.VAR_STRING,
  TYPE.STRING,
  TYPE.TINY_BLOB,
  TYPE.MEDIUM_BLOB,
  TYPE.LONG_BLOB,
  TYPE.BLOB,
  TYPE.JSON,
  TYPE.ENUM,
  TYPE.SET,
])

/** Binary-protocol types sent as a length-encoded string. */
export const BINARY_LENENC_TYPES: ReadonlySet<number> = new Set([
  ...STRING_TYPES,
  TYPE.DECIMAL,
  TYPE.NEWDECIMAL,
  TYPE.BIT,
  TYPE.GEOMETRY,
  TYPE.VECTOR,
])

/** Fixed binary-protocol widths; DATE/TIME types carry a 1-byte length instead. */
export const BINARY_FIXED_WIDTH: Readonly<Record<number, number>> = {
  [TYPE.TINY]: 1,
  [TYPE.SHORT]: 2,
  [TYPE.YEAR]: 2,
  [TYPE.LONG]: 4,
  [TYPE.INT24]: 4,
  [TYPE.FLOAT]: 4,
  [TYPE.LONGLONG]: 8,
  [TYPE.DOUBLE]: 8,
  [TYPE.NULL]: 0,
}

export const BINARY_DATETIME_TYPES: ReadonlySet<number> = new Set([
  TYPE.DATE,
  TYPE.DATETIME,
  TYPE.TIMESTAMP,
  TYPE.TIME,
  TYPE.NEWDATE,
  TYPE.TIMESTAMP2,
  TYPE.DATETIME2,
  TYPE.TIME2,
])

/** Largest physical packet payload; a payload of exactly this size continues in the next packet. */
export const MAX_PHYSICAL = 0xffffff

// Server error numbers the gateway answers with, named as the server names them (include/mysqld_error.h;
// MariaDB keeps the same numbers below 1900). Client-range codes (2000-2999) make MariaDB clients report
// "malformed packet", so only server codes are used.
// https://mariadb.com/kb/en/mariadb-error-code-reference/

/** 1043 ER_HANDSHAKE_ERROR, SQLSTATE 08S01: "Bad handshake". */
export const ER_HANDSHAKE_ERROR = 1043
/** 1045 ER_ACCESS_DENIED_ERROR, SQLSTATE 28000: "Access denied for user '%s'@'%s' (using password: %s)". */
export const ER_ACCESS_DENIED_ERROR = 1045
/** 1047 ER_UNKNOWN_COM_ERROR, SQLSTATE 08S01: "Unknown command". */
export const ER_UNKNOWN_COM_ERROR = 1047
/** 1105 ER_UNKNOWN_ERROR, SQLSTATE HY000: "Unknown error". */
export const ER_UNKNOWN_ERROR = 1105
/**
 * 1142 ER_TABLEACCESS_DENIED_ERROR, SQLSTATE 42000: "%s command denied to user '%s'@'%s' for table '%s'".
 * What clients show as "command denied": the gateway's policy refusals use it.
 */
export const ER_TABLEACCESS_DENIED_ERROR = 1142
/** 1153 ER_NET_PACKET_TOO_LARGE, SQLSTATE 08S01: "Got a packet bigger than 'max_allowed_packet' bytes". */
export const ER_NET_PACKET_TOO_LARGE = 1153
/** 1158 ER_NET_READ_ERROR, SQLSTATE 08S01: "Got an error reading communication packets". */
export const ER_NET_READ_ERROR = 1158
/** 1243 ER_UNKNOWN_STMT_HANDLER, SQLSTATE HY000: "Unknown prepared statement handler (%.*s) given to %s". */
export const ER_UNKNOWN_STMT_HANDLER = 1243
/** 1429 ER_CONNECT_TO_FOREIGN_DATA_SOURCE, SQLSTATE HY000: "Unable to connect to foreign data source: %.64s". */
export const ER_CONNECT_TO_FOREIGN_DATA_SOURCE = 1429
