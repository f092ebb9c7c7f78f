/**
 * Schemas for what users write (artifact and packet files, API bodies), and the one function that
 * turns a schema's complaints into {@link Issue}s that name the path of the offending field.
 */
import { z } from 'zod'
import { ValidationError, formatPath, joinPath } from './errors.ts'
import type { Issue } from './errors.ts'
import type { Artifact, Operation, SchedulerContext, StepSpec } from './model.ts'
import { distributions } from './model.ts'

/** A name users give things: projects, packets, jobs, targets, resource keys. */
export const nameSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
    'must be 1–128 letters, digits, or . _ : - (starting with a letter or digit)',
  )

/** One argument or environment value: large enough for any command line, bounded all the same. */
const argument = z.string().max(32_768)

/** A command line: at most 4,096 arguments. */
const commandLine = z.array(argument).max(4_096)

const envSchema = z
  .record(
    z
      .string()
      .max(256)
      .regex(/^[A-Za-z_][A-Za-z0-9_]*$/),
    argument,
  )
  .refine((env) => Object.keys(env).length <= 1_000, 'must have at most 1000 variables')

/** An {@link Operation}: exactly one of `builtin`, `exec`, `image`. */
export const operationSchema = z
  .strictObject({
    builtin: z.string().min(1).max(128).optional(),
    args: z.record(z.string().max(256), z.unknown()).optional(),
    exec: commandLine.min(1).optional(),
    image: z.string().min(1).max(1_024).optional(),
    command: commandLine.optional(),
    env: envSchema.optional(),
  })
  .superRefine((op, ctx) => {
    const kinds = (['builtin', 'exec', 'image'] as const).filter((k) => op[k] !== undefined)
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message:
          kinds.length === 0
            ? 'needs one of builtin, exec or image'
            : `has ${kinds.join(' and ')}: give exactly one of builtin, exec or image`,
      })
      return
    }
    const allowed = { builtin: ['args'], exec: ['env'], image: ['command', 'env'] }[kinds[0]!]
    for (const extra of ['args', 'command', 'env'] as const) {
      if (op[extra] !== undefined && !allowed.includes(extra)) {
        ctx.addIssue({
          code: 'custom',
          path: [extra],
          message: `does not go with ${kinds[0]}`,
        })
      }
    }
  })
  .transform((op) => op as Operation)

/**
 * How long one attempt of a job may run, in milliseconds: a whole number from 1 ms to 7 days. An
 * attempt running longer is ended with its process group and fails with reason `timeout`.
 */
export const timeoutMsSchema = z
  .number()
  .int()
  .min(1)
  .max(7 * 86_400_000)

const distributionSchema = z.enum(distributions as [string, ...string[]], {
  error: () => `must be one of ${distributions.join(', ')}`,
})

/** The most steps in one list of an artifact. */
const MAX_STEPS = 1_000

/** A {@link StepSpec}; `iterate` nests steps. */
export const stepSchema: z.ZodType<StepSpec> = z.lazy(() =>
  z.discriminatedUnion(
    'kind',
    [
      z.strictObject({
        kind: z.enum(['initialize', 'parallel', 'finalize', 'round-robin']),
        op: operationSchema,
        distribution: distributionSchema.optional(),
        timeoutMs: timeoutMsSchema.optional(),
      }),
      z.strictObject({
        kind: z.literal('sequential'),
        op: operationSchema,
        init: operationSchema.optional(),
        final: operationSchema.optional(),
        distribution: distributionSchema.optional(),
        timeoutMs: timeoutMsSchema.optional(),
      }),
      z.strictObject({
        kind: z.literal('iterate'),
        iterations: z.number().int().min(1).max(100_000),
        steps: z
          .array(stepSchema)
          .min(1, 'an iterate step needs at least one step')
          .max(MAX_STEPS, `must have at most ${MAX_STEPS} steps`),
        distribution: distributionSchema.optional(),
      }),
    ],
    {
      error: () =>
        'must be one of initialize, parallel, sequential, finalize, round-robin, iterate',
    },
  ),
) as z.ZodType<StepSpec>

/** An {@link Artifact}. */
export const artifactSchema = z.strictObject({
  project: nameSchema,
  steps: z
    .array(stepSchema)
    .min(1, 'an artifact needs at least one step')
    .max(MAX_STEPS, `must have at most ${MAX_STEPS} steps`),
})

/** A {@link SchedulerContext}. */
export const contextSchema = z.strictObject({
  initiator: nameSchema,
  workers: z.array(nameSchema),
})

/**
 * Checks `input` against `schema`; on failure throws a {@link ValidationError} whose issues
 * name each offending field's path below `root` (e.g. `steps[2].op.exec`).
 */
export function parseInput<T>(schema: z.ZodType<T>, input: unknown, root = ''): T {
  const parsed = schema.safeParse(input)
  if (parsed.success) return parsed.data
  throw new ValidationError(toIssues(parsed.error.issues, root))
}

/** Converts zod's issues into Lockstep's: a path users can read and a message without boilerplate. */
export function toIssues(issues: readonly z.core.$ZodIssue[], root = ''): Issue[] {
  const out: Issue[] = []
  for (const issue of issues) {
    const path = joinPath(root, formatPath(issue.path))
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys)
        out.push({ path: joinPath(path, key), message: 'unknown field' })
      continue
    }
    if (issue.code === 'invalid_union' && 'discriminator' in issue) {
      out.push({ path, message: issue.message })
      continue
    }
    let message = issue.message.replace(/^Invalid input: /, '')
    if (issue.code === 'invalid_type') {
      if (message.endsWith('received undefined')) message = 'is required'
      else if (issue.expected === 'int') message = 'expected a whole number'
    }
    out.push({ path, message })
  }
  return out
}

/** Checks an artifact as a user wrote it. Shape errors that need a context come from `bind`. */
export function compileArtifact(input: unknown): Artifact {
  return parseInput(artifactSchema, input)
}

/** Checks a scheduler context; its workers must be distinct. */
export function compileContext(input: unknown): SchedulerContext {
  const context = parseInput(contextSchema, input, 'context')
  const seen = new Set<string>()
  const issues: Issue[] = []
  context.workers.forEach((worker, i) => {
    if (seen.has(worker)) {
      issues.push({ path: `context.workers[${i}]`, message: `worker '${worker}' is listed twice` })
    }
    seen.add(worker)
  })
  if (issues.length > 0) throw new ValidationError(issues)
  return context
}
