// Turning per-round measurements into the output: the per-path row (median over rounds, null
// where a metric does not apply or failed), the stdout table with the ratios the lead cares
// about, and the one-line JSON document.
import { execFileSync } from 'node:child_process'
import os from 'node:os'
import type { PathName } from './muxes.js'

export interface Row {
  name: PathName
  throughputMBps: number | null
  throughput8MBps: number | null
  rttP50Us: number | null
  rttP99Us: number | null
  opensPerSec: number | null
  idleHeapBytesPerStream: number | null
  idleRssBytesPerStream: number | null
}
export type Metric = Exclude<keyof Row, 'name'>
export const METRICS: Metric[] = [
  'throughputMBps',
  'throughput8MBps',
  'rttP50Us',
  'rttP99Us',
  'opensPerSec',
  'idleHeapBytesPerStream',
  'idleRssBytesPerStream',
]

/** Per metric: 'error' if it failed in every round, else the median of the rounds that worked. */
export type Samples = Record<Metric, { values: number[]; errors: number }>

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export function toRow(name: PathName, samples: Samples): Row {
  const row = { name } as Row
  for (const m of METRICS) row[m] = median(samples[m].values)
  return row
}

const round = (x: number | null, digits: number) => (x === null ? null : Number(x.toFixed(digits)))

/** JSON numbers: MB/s and µs to 0.1, rates and bytes to integers. */
export function tidy(row: Row): Row {
  return {
    name: row.name,
    throughputMBps: round(row.throughputMBps, 1),
    throughput8MBps: round(row.throughput8MBps, 1),
    rttP50Us: round(row.rttP50Us, 1),
    rttP99Us: round(row.rttP99Us, 1),
    opensPerSec: round(row.opensPerSec, 0),
    idleHeapBytesPerStream: round(row.idleHeapBytesPerStream, 0),
    idleRssBytesPerStream: round(row.idleRssBytesPerStream, 0),
  }
}

export function env() {
  let commit: string | null = null
  try {
    commit = execFileSync('git', ['rev-parse', 'HEAD'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim()
  } catch {
    // No commits yet (or no git): leave null rather than fail the bench.
  }
  const cpus = os.cpus()
  return {
    date: new Date().toISOString(),
    node: process.version,
    cpu: `${cpus[0]?.model ?? 'unknown'} x${cpus.length}`,
    commit,
  }
}

const HEADERS = ['path', 'MB/s 1', 'MB/s 8', 'RTT p50 µs', 'RTT p99 µs', 'opens/s']
const MEM_HEADERS = ['idle heap B/stream', 'idle RSS B/stream', 'note']

function cell(v: number | null, failed: boolean, digits: number): string {
  if (v === null) return failed ? 'error' : 'n/a'
  return v.toFixed(digits)
}

export function table(rows: Row[], all: Record<string, Samples>, notes: Record<string, string>) {
  const lines = [[...HEADERS, ...MEM_HEADERS]]
  const digits = [1, 1, 1, 1, 0, 0, 0]
  for (const r of rows) {
    const s = all[r.name]!
    const cells = METRICS.map((m, i) => cell(r[m], s[m].errors > 0, digits[i]!))
    lines.push([r.name, ...cells, notes[r.name] ?? ''])
  }
  return formatTable(lines)
}

/** Aligned columns: the first and last left-aligned, the rest right-aligned (numbers). */
export function formatTable(lines: string[][]): string {
  const widths = lines[0]!.map((_, i) => Math.max(...lines.map((l) => l[i]!.length)))
  const fmt = (l: string[]) =>
    l
      .map((c, i) =>
        i === 0 || i === l.length - 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!),
      )
      .join('  ')
      .trimEnd()
  return lines.map(fmt).join('\n')
}

export function ratios(rows: Row[]): string {
  const by = (n: PathName) => rows.find((r) => r.name === n)
  const h = by('hopgate')
  const div = (a: number | null | undefined, b: number | null | undefined) =>
    a == null || b == null ? 'n/a' : `${(a / b).toFixed(2)}x`
  const diff = (a: number | null | undefined, b: number | null | undefined) =>
    a == null || b == null ? 'n/a' : `${(a - b).toFixed(1)} µs`
  return [
    `hopgate/tls single-stream:     ${div(h?.throughputMBps, by('tls')?.throughputMBps)}`,
    `hopgate/libp2p single-stream:  ${div(h?.throughputMBps, by('libp2p-yamux')?.throughputMBps)}`,
    `hopgate/tls 8-stream:          ${div(h?.throughput8MBps, by('tls')?.throughput8MBps)}`,
    `hopgate p50 RTT - tls p50 RTT: ${diff(h?.rttP50Us, by('tls')?.rttP50Us)}`,
  ].join('\n')
}
