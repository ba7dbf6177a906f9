// `hopgate route get|set <project>` through the edge admin API. `set` is a compare-and-set: with
// --expected-epoch it fences on that epoch; without, it reads the current route first and fences
// on what it read, so a concurrent change between the two still loses rather than being overwritten.
import { InvalidArgumentError, Option, type Command } from 'commander'
import { isHopgateError } from '../../errors.js'
import {
  assertProjectId,
  assertRunnerId,
  ROUTE_STATES,
  type Route,
} from '../../../edge/routing/types.js'
import { adminCall, adminOption, printJson } from './common.js'

function parseEpoch(value: string): number {
  if (!/^[1-9]\d{0,15}$/.test(value) || !Number.isSafeInteger(Number(value))) {
    throw new InvalidArgumentError('want a positive integer')
  }
  return Number(value)
}

function describe(r: Route): string {
  return `${r.project} -> ${r.runner} (epoch ${r.epoch}, ${r.state}, updated ${new Date(r.updatedAt).toISOString()})\n`
}

export function registerRoute(program: Command): void {
  const route = program.command('route').description("a project's route: runner, epoch, state")

  route
    .command('get <project>')
    .description('print the stored route of a project')
    .addOption(adminOption())
    .option('--json', 'print {route}')
    .action(async (project: string, opts: { admin: string; json?: boolean }) => {
      assertProjectId(project)
      const out = await adminCall<{ route: Route }>(opts.admin, 'GET', `/v1/routes/${project}`)
      if (opts.json) printJson(out)
      else process.stdout.write(describe(out.route))
    })

  route
    .command('set <project>')
    .description('point a project at a runner (compare-and-set on the epoch)')
    .requiredOption('--runner <id>', 'runner id')
    .addOption(new Option('--state <state>', 'route state').choices(ROUTE_STATES).default('active'))
    .addOption(new Option('--expected-epoch <n>', 'fence on this epoch').argParser(parseEpoch))
    .addOption(adminOption())
    .option('--json', 'print {route}')
    .action(
      async (
        project: string,
        opts: {
          runner: string
          state: string
          expectedEpoch?: number
          admin: string
          json?: boolean
        },
      ) => {
        assertProjectId(project)
        assertRunnerId(opts.runner)
        let expectedEpoch: number | null | undefined = opts.expectedEpoch
        if (expectedEpoch === undefined) {
          try {
            const cur = await adminCall<{ route: Route }>(
              opts.admin,
              'GET',
              `/v1/routes/${project}`,
            )
            expectedEpoch = cur.route.epoch
          } catch (err) {
            if (!isHopgateError(err, 'HOPGATE_ERR_ROUTE_NOT_FOUND')) throw err
            expectedEpoch = null
          }
        }
        const out = await adminCall<{ route: Route }>(opts.admin, 'PUT', `/v1/routes/${project}`, {
          runner: opts.runner,
          state: opts.state,
          expectedEpoch,
        })
        if (opts.json) printJson(out)
        else process.stdout.write(describe(out.route))
      },
    )
}
