// Command-line value parsing shared by the benchmarks (bench/yamux.ts, bench/tunnel.ts).

export const MiB = 1024 * 1024

/** `256m`, `64MiB`, `1g`, `4096`: bytes, binary multiples. */
export function parseBytes(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)i?b?$/i.exec(s.trim())
  if (!m) throw new Error(`bad --bytes ${s}`)
  const mult = { '': 1, k: 1024, m: MiB, g: 1024 * MiB }[m[2]!.toLowerCase()] ?? 1
  return Math.round(Number(m[1]) * mult)
}
