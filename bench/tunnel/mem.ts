// Resident memory and CPU time of a process and everything it forked, from /proc (Linux): for
// the middle processes the bench cannot ask over IPC (sshd and its per-connection children, ssh)
// and for the CPU each path's middle spends per connection.
import { readFileSync } from 'node:fs'

function children(pid: number): number[] {
  try {
    const tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    return tasks.split(/\s+/).filter(Boolean).map(Number)
  } catch {
    return []
  }
}

function vmRssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

/** Sum of VmRSS over `pid` and its descendants, in bytes. */
export function treeRss(pid: number): number {
  let total = vmRssBytes(pid)
  for (const c of children(pid)) total += treeRss(c)
  return total
}

/** User + system CPU of `pid` and its live descendants, in milliseconds (0 if it is gone). */
export function treeCpuMs(pid: number): number {
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return 0
  }
  // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
  const f = stat.slice(stat.lastIndexOf(') ') + 2).split(' ')
  let total = ((Number(f[11]) + Number(f[12])) * 1000) / CLOCK_TICKS
  for (const c of children(pid)) total += treeCpuMs(c)
  return total
}
/** USER_HZ: 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100
