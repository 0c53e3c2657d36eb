import { z } from 'zod';
import { endpointNameSchema } from '../schema/route-table.js';
import { autoscalingSchema } from './autoscale/spec.js';

/**
 * A service's desired state: what the admin API accepts and what the store keeps
 * (ServiceRecord.spec), so a restarted gateway can bring the service back.
 */

const MEMORY_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };
const MIN_MEMORY_BYTES = 4 * 1024 * 1024;

/** "2g", "512m", "1.5Gi", "1048576" or a number of bytes → bytes. */
export function parseMemory(value: string | number): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : null;
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(value);
  if (!m) return null;
  const bytes = Math.floor(Number(m[1]) * MEMORY_UNITS[m[2].toLowerCase()]);
  return bytes > 0 ? bytes : null;
}

export const resourcesSchema = z
  .object({
    cpu: z.number().gt(0, 'must be a number of cores > 0').max(1024).optional(),
    memory: z
      .union([z.string().max(32), z.number()])
      .superRefine((v, ctx) => {
        const bytes = parseMemory(v);
        if (bytes === null) ctx.addIssue({ code: 'custom', message: 'expected a size like "2g", "512m" or a number of bytes' });
        else if (bytes < MIN_MEMORY_BYTES) ctx.addIssue({ code: 'custom', message: 'must be at least 4m' });
      })
      .optional(),
    /** GPUs (Kubernetes: `nvidia.com/gpu`); the process runtime records it only. */
    gpu: z.number().int('must be a whole number of GPUs').min(0).max(64).optional(),
    /** Size of /dev/shm (Kubernetes: a memory-backed emptyDir). */
    shared_memory: z
      .union([z.string().max(32), z.number()])
      .superRefine((v, ctx) => {
        if (parseMemory(v) === null) ctx.addIssue({ code: 'custom', message: 'expected a size like "1g", "512m" or a number of bytes' });
      })
      .optional(),
  })
  .strict();
export type Resources = z.infer<typeof resourcesSchema>;

export const runtimeSchema = z.enum(['process', 'kubernetes']);

/** Where a Kubernetes replica finds the model folder (mounted at the definition's model_path). */
export const modelVolumeSchema = z.union([
  z.object({ claim: z.string().min(1).max(253), sub_path: z.string().max(4096).optional(), read_only: z.boolean().optional() }).strict(),
  z.object({ host_path: z.string().min(1).max(4096).startsWith('/', 'must be an absolute path') }).strict(),
]);
export type ModelVolume = z.infer<typeof modelVolumeSchema>;

const imageSchema = z.string().min(1).max(1024).regex(/^\S+$/, 'must be an image reference without spaces');

/** runtime "kubernetes" needs an image; the others must not carry Kubernetes-only fields. */
function checkRuntime(v: { runtime?: string; image?: string; model_volume?: unknown }, ctx: z.RefinementCtx): void {
  if (v.runtime === 'kubernetes' && !v.image) ctx.addIssue({ code: 'custom', path: ['image'], message: 'required with runtime "kubernetes"' });
  if (v.runtime === 'process' && v.image) ctx.addIssue({ code: 'custom', path: ['image'], message: 'only used with runtime "kubernetes"' });
}

export const envSchema = z
  .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'environment variable names are letters, digits and _').max(256), z.string().max(65_536))
  .refine((env) => Object.keys(env).length <= 256, 'at most 256 variables');

const folderSchema = z.string().min(1, 'required').max(4096);
const definitionPathSchema = z.string().min(1).max(4096);
/** The seed guide's "Model Destination For Model Folder": another path the replica sees the model folder at. */
export const DEFAULT_MOUNT_DESTINATION = '/models';
const mountDestinationSchema = z
  .string()
  .max(4096)
  .regex(/^\/[^\0]*$/, 'must be an absolute path (e.g. /models)')
  .refine((p) => p !== '/', 'must not be /');
export const replicasSchema = z.number().int('must be an integer').min(1).max(64);

export const createServiceSchema = z
  .object({
    name: endpointNameSchema,
    model_folder: folderSchema,
    model_definition_path: definitionPathSchema.optional(),
    model_mount_destination: mountDestinationSchema.optional(),
    replicas: replicasSchema.default(1),
    public: z.boolean().default(false),
    env: envSchema.default({}),
    resources: resourcesSchema.optional(),
    /** Present: the controller owns the replica count (`replicas` is only the first count). */
    autoscaling: autoscalingSchema.optional(),
    /** Default: CONTROLLER_RUNTIME. */
    runtime: runtimeSchema.optional(),
    image: imageSchema.optional(),
    model_volume: modelVolumeSchema.optional(),
  })
  .strict()
  .superRefine(checkRuntime);
export type CreateServiceInput = z.infer<typeof createServiceSchema>;

export const patchServiceSchema = z
  .object({
    replicas: replicasSchema.optional(),
    public: z.boolean().optional(),
    env: envSchema.optional(),
    resources: resourcesSchema.nullable().optional(),
    /** null: back to a fixed `replicas`. */
    autoscaling: autoscalingSchema.nullable().optional(),
  })
  .strict();
export type PatchServiceInput = z.infer<typeof patchServiceSchema>;

export const validateServiceSchema = z
  .object({
    model_folder: folderSchema,
    model_definition_path: definitionPathSchema.optional(),
    model_mount_destination: mountDestinationSchema.optional(),
    env: envSchema.default({}),
    resources: resourcesSchema.optional(),
    /** Upper bound for the whole run; default: the health window + 30 s, at most 600 s. */
    timeout_seconds: z.number().positive().max(3600).optional(),
  })
  .strict();
export type ValidateServiceInput = z.infer<typeof validateServiceSchema>;

/** What the store keeps (ServiceRecord.spec). */
export const serviceSpecSchema = z.object({
  name: endpointNameSchema,
  /** Absolute. */
  model_folder: z.string(),
  model_definition_path: z.string().optional(),
  model_mount_destination: z.string().optional(),
  replicas: z.number().int().min(1),
  public: z.boolean(),
  env: z.record(z.string(), z.string()),
  resources: resourcesSchema.optional(),
  autoscaling: autoscalingSchema.optional(),
  /** The autoscaler's last decided count, so a restarted controller resumes from it. */
  autoscaling_desired: z.number().int().min(0).optional(),
  runtime: runtimeSchema.optional(),
  image: z.string().optional(),
  model_volume: modelVolumeSchema.optional(),
  endpoint_id: z.string(),
  created_at: z.string(),
  /** Set while a termination is in progress, so a restart finishes it instead of reviving it. */
  terminating: z.boolean().optional(),
  /** Bumped by "clear error and retry" on a non-leader; the leader clears on seeing it change. */
  clear_errors: z.number().int().optional(),
});
export type ServiceSpec = z.infer<typeof serviceSpecSchema>;
