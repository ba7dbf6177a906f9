// Test helper shared by the tunnel codec tests: cuts a byte string at arbitrary points, so that
// fast-check can ask whether any chunking of the same bytes decodes the same.

/** `bytes` split at `cuts` (taken modulo the length; duplicates and empty pieces allowed). */
export function chunkAt(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Buffer[] = []
  let last = 0
  for (const p of points) {
    out.push(bytes.subarray(last, p))
    last = p
  }
  out.push(bytes.subarray(last))
  return out
}
