/**
 * `npm run bench -- NAME` runs one benchmark; `npm run bench` runs them all. Figures are JSON
 * lines on stdout; a table goes to stderr.
 */
import { runBind } from './bind.ts'
import { runCli } from './cli.ts'
import { runCore } from './core.ts'
import { runDashboard } from './dashboard.ts'
import { runE2eDag } from './e2e-dag.ts'
import { runE2ePostgres, runE2eSqlite } from './e2e.ts'
import { runKube } from './kube.ts'
import { runPeers } from './peers.ts'
import { runSoak } from './soak.ts'
import { printTable } from './report.ts'
import { runRestart, runStorePostgres, runStoreSqlite } from './store.ts'

const benches: Record<string, () => unknown> = {
  bind: runBind,
  core: runCore,
  'store-sqlite': runStoreSqlite,
  'store-postgres': runStorePostgres,
  restart: runRestart,
  'e2e-sqlite': runE2eSqlite,
  'e2e-postgres': runE2ePostgres,
  'e2e-dag': runE2eDag,
  kube: runKube,
  soak: runSoak,
  dashboard: runDashboard,
  peers: runPeers,
  cli: runCli,
}

// The `lockstep` processes the benches start run the sources (see docs/architecture.md); `cli`
// alone times the compiled command, as users run it.
process.env.LOCKSTEP_SOURCE ??= '1'

const wanted = process.argv.slice(2)
const unknown = wanted.filter((name) => !(name in benches))
if (unknown.length > 0) {
  process.stderr.write(
    `unknown bench: ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ')}\n`,
  )
  process.exit(2)
}
for (const name of wanted.length > 0 ? wanted : Object.keys(benches)) await benches[name]!()
printTable()
