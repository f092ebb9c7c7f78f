/**
 * Lockstep's library contract. Everything a program embedding Lockstep may rely on is exported
 * here; the rest of `src/` is internal.
 */
export type {
  Artifact,
  BoundJob,
  Distribution,
  FailurePolicy,
  JobResult,
  Lock,
  OnExhausted,
  Operation,
  Resource,
  SchedulerContext,
  StepKind,
  StepSpec,
  TargetPolicy,
} from './core/model.ts'
export { distributions } from './core/model.ts'
export { bind, toJobGraph } from './core/bind.ts'
export type { BindOptions, GraphJob, JobGraph } from './core/bind.ts'
export { compileArtifact, compileContext } from './core/schema.ts'
export { compilePacket, defaultPacketLimits, findCycle, targetPolicy } from './core/packet.ts'
export { compileLimits, defaultLimits } from './core/limits.ts'
export type { Limits, LimitsOptions } from './core/limits.ts'
export type {
  Packet,
  PacketJob,
  PacketJobOptions,
  PacketLimits,
  PacketOptions,
} from './core/packet.ts'
export { backoffDelay, compileFailurePolicy, defaultFailurePolicy } from './core/failure-policy.ts'
export type { FailurePolicyOptions } from './core/failure-policy.ts'
export { IdGenerator, bytesToId, idTime, idToBytes, isId } from './core/ids.ts'
export type { Id, RandomSource } from './core/ids.ts'
export {
  CycleError,
  LockstepError,
  StoreUnavailableError,
  ValidationError,
  errorCatalogue,
  formatIssue,
} from './core/errors.ts'
export type { ErrorCode, Issue } from './core/errors.ts'
export type {
  Job,
  JobState,
  Order,
  OrderSites,
  OrderState,
  Target,
  TargetKind,
  TargetPolicyOverride,
} from './core/model.ts'
export { finalJobStates } from './core/model.ts'
export { DEFAULT_PRIORITY, compileOrderOptions } from './core/order.ts'
export type { OrderOptions, ResolvedOrderOptions } from './core/order.ts'
export { readDocument, readSubmission } from './core/document.ts'
export type { Submission } from './core/document.ts'
export { seededRandom } from './core/random.ts'
export { FakeClock, systemClock } from './core/clock.ts'
export type { Clock, Timer } from './core/clock.ts'
export { Scheduler, describeWaitReason } from './core/dispatch/scheduler.ts'
export type {
  PendingJob,
  ScheduleJobOptions,
  SchedulerOptions,
  WaitReason,
} from './core/dispatch/scheduler.ts'
export { Engine } from './core/engine/engine.ts'
export type { EngineOptions, JobWait, PacketRecord } from './core/engine/engine.ts'
export { heartbeatSchema, targetRegistrationSchema } from './core/protocol.ts'
export type {
  Assignment,
  HeartbeatInput,
  HeartbeatReply,
  JobInput,
  TargetRegistration,
} from './core/protocol.ts'
export type {
  EngineEvent,
  EngineEventMap,
  EngineEventType,
  EngineListener,
} from './core/engine/events.ts'
export { emptyCounts } from './core/engine/fulfilment.ts'
export type {
  AttemptState,
  JobCounts,
  OrderFulfilment,
  TargetFulfilment,
} from './core/engine/fulfilment.ts'
