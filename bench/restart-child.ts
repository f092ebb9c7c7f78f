/** Starts a scheduler service on the store at argv[2] and says `serving` once it serves. */
import { SchedulerService } from '../src/service/service.ts'
import { SqliteStore } from '../src/store/sqlite-store.ts'

const begin = performance.now()
const service = await SchedulerService.start({ store: new SqliteStore({ path: process.argv[2]! }) })
const stats = service.stats().orders
process.stderr.write(
  `restart: ${stats} running orders rebuilt in ${((performance.now() - begin) / 1000).toFixed(2)} s after imports\n`,
)
process.stdout.write('serving\n')
await service.close()
