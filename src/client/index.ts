/**
 * Lockstep's client SDK (`lockstep/client`): submit artifacts and packets, follow orders as
 * typed events that survive a dropped stream, read their jobs and why they wait, cancel, read
 * logs and download products. It speaks the scheduler's HTTP API and needs nothing of the
 * server; every error it throws is a {@link LockstepError} with a code of the catalogue.
 */
export { LockstepClient } from './client.ts'
export type {
  ClientOptions,
  DocumentOptions,
  JobLogs,
  OrderFilter,
  OrderPage,
  OrderResult,
  StreamEvent,
} from './client.ts'
export type { FollowOptions } from './follow.ts'
export type { Download, DownloadOptions } from './products.ts'
export type {
  ArtifactInput,
  FulfilmentEvent,
  Job,
  JobDetail,
  JobWait,
  ListedJob,
  Lock,
  LoggedEvent,
  OrderDetail,
  OrderEvent,
  OrderFulfilment,
  OrderOptions,
  OrderProducts,
  PacketCreated,
  PacketInput,
  ProductHolders,
  StreamedEvent,
  Target,
  TargetAttempt,
  TargetFulfilment,
  TargetStatus,
} from './types.ts'
export {
  LockstepError,
  SitesOfflineError,
  StoreUnavailableError,
  ValidationError,
  errorCatalogue,
} from '../core/errors.ts'
export type { ErrorCode, Issue } from '../core/errors.ts'
