// The open status byte and its two-way mapping to typed errors and HTTP statuses, plus the field
// validators both wire formats share (client address, host:port, ids).
import t from 'tap'
import {
  encodeOpenStatus,
  errorToStatus,
  OPEN_STATUS_NAMES,
  OpenStatus,
  openStatusName,
  statusToError,
} from '../../shared/tunnel/open-status.js'
import {
  formatClientAddress,
  isClientAddress,
  isHostPort,
  isNodeId,
  isProjectId,
  isTraceId,
} from '../../shared/tunnel/fields.js'
import { ERROR_CATALOG, type ErrorCode } from '../../shared/errors.js'

t.test('every status maps to its error, HTTP status and back', async (tt) => {
  const table: Array<[OpenStatus, ErrorCode, number]> = [
    [OpenStatus.UnknownProject, 'HOPGATE_ERR_OPEN_UNKNOWN_PROJECT', 404],
    [OpenStatus.StaleEpoch, 'HOPGATE_ERR_OPEN_STALE_EPOCH', 503],
    [OpenStatus.Refused, 'HOPGATE_ERR_OPEN_REFUSED', 403],
    [OpenStatus.TargetDown, 'HOPGATE_ERR_OPEN_TARGET_DOWN', 502],
    [OpenStatus.BadHeader, 'HOPGATE_ERR_OPEN_BAD_HEADER', 502],
    [OpenStatus.Overloaded, 'HOPGATE_ERR_OPEN_OVERLOADED', 503],
  ]
  tt.equal(table.length + 1, OPEN_STATUS_NAMES.length, 'every non-ok status is in the table')
  for (const [status, code, http] of table) {
    const err = statusToError(status, 'detail')
    tt.equal(err?.code, code, `status ${status}`)
    tt.equal(err?.httpStatus, http, `${code} answers HTTP ${http}`)
    tt.equal(err?.goAway, undefined, `${code} ends the stream, not the session`)
    tt.match(err?.message, /detail$/)
    tt.equal(errorToStatus(code), status, `${code} -> ${status}`)
    tt.same(encodeOpenStatus(status), Buffer.from([status]))
  }
  tt.equal(statusToError(OpenStatus.Ok), undefined, 'ok is no error')
  tt.same(encodeOpenStatus(OpenStatus.Ok), Buffer.from([0]))
})

t.test('status bytes no version defines are typed errors on the edge', async (tt) => {
  for (const b of [7, 42, 255]) {
    const err = statusToError(b)
    tt.equal(err?.code, 'HOPGATE_ERR_OPEN_BAD_STATUS', `byte ${b}`)
    tt.equal(err?.httpStatus, 502)
    tt.equal(openStatusName(b), 'unknown')
  }
  tt.equal(openStatusName(2), 'stale_epoch')
  tt.throws(() => encodeOpenStatus(7 as OpenStatus), RangeError)
})

t.test('the agent answers bad header for every header error, nothing for others', async (tt) => {
  const headerCodes = Object.keys(ERROR_CATALOG).filter((c) =>
    c.startsWith('HOPGATE_ERR_OPEN_HEADER_'),
  ) as ErrorCode[]
  tt.ok(headerCodes.length >= 10)
  for (const c of headerCodes) tt.equal(errorToStatus(c), OpenStatus.BadHeader, c)
  tt.equal(errorToStatus('HOPGATE_ERR_OPEN_BAD_STATUS'), undefined, 'edge-only code')
  tt.equal(errorToStatus('HOPGATE_ERR_YAMUX_STREAM_RESET'), undefined)
  tt.equal(errorToStatus('HOPGATE_ERR_ABORTED'), undefined)
})

t.test('client addresses: IP literal and port only, one spelling', async (tt) => {
  const good = [
    '203.0.113.7:51234',
    '0.0.0.0:1',
    '[2001:db8::1]:443',
    '[::1]:65535',
    '[::ffff:127.0.0.1]:8080',
    '[fe80::1%eth0]:22',
    '[2001:DB8::1]:443',
  ]
  const bad = [
    '',
    '203.0.113.7',
    '203.0.113.7:',
    '203.0.113.7:0',
    '203.0.113.7:65536',
    '203.0.113.7:080',
    '203.0.113.7:+80',
    '203.0.113.07:80',
    '1.2.3.999:80',
    '2001:db8::1:443',
    '[203.0.113.7]:80',
    '[2001:db8::1]',
    'localhost:80',
    ' 1.2.3.4:80',
    '1.2.3.4:80\n',
    `[${'a'.repeat(70)}]:1`,
  ]
  for (const a of good) tt.ok(isClientAddress(a), a)
  for (const a of bad) tt.notOk(isClientAddress(a), JSON.stringify(a))
  tt.equal(formatClientAddress('::ffff:10.0.0.1', 5), '[::ffff:10.0.0.1]:5')
  tt.equal(formatClientAddress('10.0.0.1', 5), '10.0.0.1:5')
  tt.notOk(isClientAddress(42))
})

t.test('host:port advice, ids and trace ids', async (tt) => {
  for (const a of ['edge-1.example.com:7443', 'localhost:7444', '10.0.0.1:7443', '[::1]:7443']) {
    tt.ok(isHostPort(a), a)
  }
  for (const a of [
    'edge:0',
    'edge',
    ':7443',
    '-edge.example:7443',
    'a..b:1',
    '1.2.3.999:7443',
    'ex ample:1',
    `${'a'.repeat(64)}.example:1`,
    'http://edge:7443',
  ]) {
    tt.notOk(isHostPort(a), a)
  }
  tt.ok(isNodeId('runner-01.eu_west'))
  tt.notOk(isNodeId('-runner'))
  tt.notOk(isNodeId('a'.repeat(64)))
  tt.ok(isProjectId('0f8fad5b-d9cb-469f-a165-70867728950e'))
  tt.notOk(isProjectId('0F8FAD5B-D9CB-469F-A165-70867728950E'))
  tt.ok(isTraceId('A-z_0.9'))
  tt.notOk(isTraceId('a/b'))
})
