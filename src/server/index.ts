/**
 * Lockstep's scheduler for embedding (`lockstep/server`): start a scheduler in a program of
 * your own, on SQLite, PostgreSQL or a store you opened, with the HTTP API, the dashboard and
 * the push targets that `lockstep server` runs. Everything a program may rely on is exported
 * here; the rest of `src/server/` is internal.
 */
export { serve } from './serve.ts'
export type { ServeOptions, Serving } from './serve.ts'
export { parseTokens } from './auth.ts'
export type { Role, TokenEntry } from './auth.ts'
export { defaultDataDir, openStore, storeUrlFromEnvironment } from '../store/open-store.ts'
export type { Store, StoreCapabilities } from '../store/store.ts'
export { readTargetsFile, TargetsFileError } from '../targets/kubernetes/targets-file.ts'
export type { ResolvedTarget } from '../targets/kubernetes/targets-file.ts'
export type { LimitsOptions } from '../core/limits.ts'
export { defaultLimits } from '../core/limits.ts'
