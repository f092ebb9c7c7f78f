/**
 * Lockstep's client SDK (`lockstep/client`): submit artifacts and packets, follow orders, read
 * their jobs and products. It speaks the scheduler's HTTP API and needs nothing of the server.
 */
export { LockstepClient } from './client.ts'
export type {
  ClientOptions,
  JobWaitWords,
  OrderFilter,
  OrderPage,
  ProductHolders,
  StreamEvent,
  TargetAttempt,
} from './client.ts'
export {
  LockstepError,
  StoreUnavailableError,
  ValidationError,
  errorCatalogue,
} from '../core/errors.ts'
export type { ErrorCode, Issue } from '../core/errors.ts'
