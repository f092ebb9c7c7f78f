/**
 * The targets file: the push targets a scheduler hands attempts to, in YAML or JSON
 * (`lockstep server --targets targets.yaml`). Each entry has a `kind`; only `kubernetes` exists
 * so far, and the schema is a union on `kind` so that other kinds join it as new members.
 *
 * Invariants: a file that reads is whole and checked (no partial list of targets); every error
 * names the file, the path of the offending field and what is wrong; target names are unique
 * and valid as Kubernetes label values (they label every Pod); a kubeconfig path is resolved
 * against the targets file's own directory, once, here.
 */
import { readFileSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import { z } from 'zod'
import { readDocument } from '../../core/document.ts'
import { ValidationError, formatIssue } from '../../core/errors.ts'
import type { Issue } from '../../core/errors.ts'
import { toIssues } from '../../core/schema.ts'

/** A Kubernetes label value: at most 63 characters, alphanumeric at both ends. */
export const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/

/** True for a non-empty string Kubernetes accepts as a label value. */
export function isLabelValue(text: string): boolean {
  return text !== '' && text.length <= 63 && LABEL_VALUE.test(text)
}

/** The longest image pull trouble an attempt outlives when the entry does not say. */
export const DEFAULT_IMAGE_PULL_TIMEOUT_SECONDS = 300

const kubernetesTargetSchema = z.strictObject({
  name: z
    .string()
    .refine(
      isLabelValue,
      'must be 1–63 letters, digits, or - _ . (starting and ending with a letter or digit): it labels every Pod',
    ),
  kind: z.literal('kubernetes'),
  /** Absent: the cluster the scheduler runs in, with its ServiceAccount (in-cluster). */
  kubeconfig: z.string().min(1, 'must name a kubeconfig file').optional(),
  context: z.string().min(1).optional(),
  namespace: z
    .string()
    .regex(
      /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
      'must be a Kubernetes namespace: 1–63 lowercase letters, digits or -',
    )
    .optional(),
  availability: z
    .number()
    .int()
    .min(0, 'must be 0 or more: the most Pods of Lockstep’s at once')
    .max(1_000_000),
  labels: z.record(z.string().min(1).max(256), z.string().max(256)).optional(),
  imagePullTimeoutSeconds: z.number().int().min(1).max(86_400).optional(),
})

const targetSchema = z.discriminatedUnion('kind', [kubernetesTargetSchema], {
  error: () => 'must be kubernetes (the only kind of target so far)',
})

const targetsFileSchema = z.strictObject(
  { targets: z.array(targetSchema) },
  {
    error: (issue) =>
      issue.code === 'invalid_type' ? 'expected a mapping with a list of targets' : undefined,
  },
)

/** A Kubernetes target as the targets file gives it. */
export type KubernetesTargetOptions = z.input<typeof kubernetesTargetSchema>

/** A target entry as the targets file gives it; `kind` tells which. */
export type TargetOptions = z.input<typeof targetSchema>

/** A Kubernetes cluster target, checked, with defaults applied and its kubeconfig path absolute. */
export interface ResolvedKubernetesTarget {
  kind: 'kubernetes'
  /** The target's id; labels its Pods as `lockstep.dev/target`. */
  name: string
  /**
   * The kubeconfig file, an absolute path; absent for the cluster the scheduler runs in, reached
   * with its Pod's ServiceAccount (in-cluster configuration).
   */
  kubeconfig?: string
  /** The kubeconfig's context to use. @default the kubeconfig's current context */
  context?: string
  /** The namespace Pods run in. @default the context's namespace, else `default` */
  namespace?: string
  /** The most Pods of Lockstep's on this target at once. */
  availability: number
  /** Labels job target policies match. @default {} */
  labels: Record<string, string>
  /**
   * How long a Pod's image may fail to pull (`ImagePullBackOff`, `ErrImagePull`) before its
   * attempt fails as `image-pull`. @default 300 000 (the file's `imagePullTimeoutSeconds`: 300)
   */
  imagePullTimeoutMs: number
}

/** A checked target entry. */
export type ResolvedTarget = ResolvedKubernetesTarget

/** A checked targets file. */
export interface TargetsFile {
  /** The file it was read from (as given). */
  path: string
  targets: ResolvedTarget[]
}

/** A targets file that cannot be read or does not check; each issue names a field's path. */
export class TargetsFileError extends ValidationError {
  /** The file, as it was given. */
  readonly file: string
  constructor(file: string, issues: readonly Issue[]) {
    super(issues)
    this.name = 'TargetsFileError'
    this.file = file
    this.message = issues
      .map((i) => (i.message.startsWith(`${file}:`) ? i.message : `${file}: ${formatIssue(i)}`))
      .join('\n')
  }
}

/**
 * Checks the data of a targets file (already parsed from YAML or JSON). `file` names it in
 * errors and is the directory relative kubeconfig paths are resolved against.
 */
export function compileTargetsFile(data: unknown, file: string): TargetsFile {
  const parsed = targetsFileSchema.safeParse(data)
  if (!parsed.success) throw new TargetsFileError(file, toIssues(parsed.error.issues))
  const issues: Issue[] = []
  const seen = new Map<string, number>()
  parsed.data.targets.forEach((t, i) => {
    const first = seen.get(t.name)
    if (first !== undefined) {
      issues.push({
        path: `targets[${i}].name`,
        message: `'${t.name}' is the name of targets[${first}] too: names must be unique`,
      })
    } else seen.set(t.name, i)
  })
  if (issues.length > 0) throw new TargetsFileError(file, issues)
  const dir = dirname(resolve(file))
  return {
    path: file,
    targets: parsed.data.targets.map((t) => ({
      kind: t.kind,
      name: t.name,
      ...(t.kubeconfig === undefined ? {} : { kubeconfig: resolve(dir, t.kubeconfig) }),
      ...(t.context === undefined ? {} : { context: t.context }),
      ...(t.namespace === undefined ? {} : { namespace: t.namespace }),
      availability: t.availability,
      labels: t.labels ?? {},
      imagePullTimeoutMs: (t.imagePullTimeoutSeconds ?? DEFAULT_IMAGE_PULL_TIMEOUT_SECONDS) * 1000,
    })),
  }
}

/**
 * Reads and checks a targets file. Throws a {@link TargetsFileError} naming the file, the
 * field's path and the problem (`targets.yaml: targets[0].availability: is required`); a file
 * that cannot be read or parsed is one too.
 */
export function readTargetsFile(path: string): TargetsFile {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    throw new TargetsFileError(path, [
      { path: '', message: `cannot read the targets file: ${(e as Error).message}` },
    ])
  }
  let data: unknown
  try {
    data = readDocument(text, path)
  } catch (e) {
    if (e instanceof ValidationError) throw new TargetsFileError(path, e.issues)
    throw e
  }
  return compileTargetsFile(data, path)
}
