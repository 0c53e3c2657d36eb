import { readFile, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import { LineCounter, parseDocument, isNode } from 'yaml';
import { z } from 'zod';

/**
 * The model definition (`model-definition.yaml`), in the format the seed system's users already
 * write. Parsing is strict: an unknown key is as likely a typo of a real one as anything else,
 * and a silently ignored `helth_check` would run a service with the wrong health check.
 * Every problem is reported with its YAML path (`models[0].service.port: expected integer`).
 */

export const DEFINITION_FILE_NAMES = ['model-definition.yaml', 'model-definition.yml'] as const;

export interface DefinitionProblem {
  /** YAML path of the field (`models[0].service.port`), or `model_definition` for the whole file. */
  path: string;
  message: string;
}

export class DefinitionError extends Error {
  readonly problems: DefinitionProblem[];
  /** The file that was read, when one was found. */
  readonly file?: string;

  constructor(problems: DefinitionProblem[], file?: string) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join('; '));
    this.name = 'DefinitionError';
    this.problems = problems;
    this.file = file;
  }
}

/** zod error callback: "required" for a missing field, else what was expected and what came. */
const expected = (what: string) => (iss: { input?: unknown }) => (iss.input === undefined ? 'required' : `expected ${what}, got ${typeName(iss.input)}`);

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'list';
  if (typeof value === 'object') return 'mapping';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

const int = (min: number, max: number) =>
  z
    .number({ error: expected('integer') })
    .int({ error: 'expected integer' })
    .min(min, { error: `must be at least ${min}` })
    .max(max, { error: `must be at most ${max}` });

const seconds = (min: number) =>
  z
    .number({ error: expected('a number of seconds') })
    .min(min, { error: `must be at least ${min}` })
    .max(86_400, { error: 'must be at most 86400' });

const str = (what = 'string') => z.string({ error: expected(what) });
const nonEmpty = (what = 'string') => str(what).min(1, { error: 'must not be empty' });

/** The seed writes `True`/`False`; some definitions quote them. */
const yamlBool = z.preprocess(
  (v) => (typeof v === 'string' && /^(true|false)$/i.test(v) ? v.toLowerCase() === 'true' : v),
  z.boolean({ error: expected('True or False') }),
);

/**
 * File mode as the seed writes it: "644" or 644 (digits read as octal), or a YAML 1.2 octal
 * literal (0o644, already a number whose decimal digits are not the octal ones).
 */
const fileMode = z
  .union([z.string(), z.number()], { error: expected('a file mode like "644"') })
  .transform((v, ctx) => {
    const text = String(v);
    if (typeof v === 'string' || /^[0-7]{3,4}$/.test(text)) {
      if (!/^0?[0-7]{3,4}$/.test(text)) {
        ctx.addIssue({ code: 'custom', message: `expected an octal file mode like "644", got ${JSON.stringify(v)}` });
        return z.NEVER;
      }
      return parseInt(text, 8);
    }
    if (Number.isInteger(v) && v >= 0 && v <= 0o7777) return v;
    ctx.addIssue({ code: 'custom', message: `expected an octal file mode like "644", got ${text}` });
    return z.NEVER;
  });

const writeFileArgs = z
  .object({
    filename: nonEmpty('a file name'),
    body: str().default(''),
    mode: fileMode.default(0o644),
    append: yamlBool.default(false),
  })
  .strict();
const writeTempfileArgs = z.object({ body: str().default(''), mode: fileMode.default(0o644) }).strict();
const runCommandArgs = z
  .object({ command: z.array(nonEmpty(), { error: expected('a list of strings') }).min(1, { error: 'must not be empty' }) })
  .strict();
const mkdirArgs = z.object({ path: nonEmpty('a path') }).strict();
const logArgs = z.object({ message: str(), debug: yamlBool.default(false) }).strict();

const ACTION_ARGS = {
  write_file: writeFileArgs,
  write_tempfile: writeTempfileArgs,
  run_command: runCommandArgs,
  mkdir: mkdirArgs,
  log: logArgs,
} as const;
export type ActionName = keyof typeof ACTION_ARGS;
export const ACTION_NAMES = Object.keys(ACTION_ARGS) as ActionName[];

export type PreStartAction =
  | { action: 'write_file'; args: z.infer<typeof writeFileArgs>; ref?: string }
  | { action: 'write_tempfile'; args: z.infer<typeof writeTempfileArgs>; ref?: string }
  | { action: 'run_command'; args: z.infer<typeof runCommandArgs>; ref?: string }
  | { action: 'mkdir'; args: z.infer<typeof mkdirArgs>; ref?: string }
  | { action: 'log'; args: z.infer<typeof logArgs>; ref?: string };

/** Names usable as `{name}` in later arguments; the built-ins cannot be shadowed. */
export const BUILTIN_VARIABLES = ['model_path', 'port', 'home'] as const;
const REF_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

const actionSchema = z
  .object({
    action: str('an action name'),
    args: z.unknown().optional(),
    ref: str('a variable name').regex(REF_RE, { error: 'must be a name of letters, digits and _ (not starting with a digit)' }).optional(),
  })
  .strict()
  .transform((value, ctx): PreStartAction => {
    const schema = (ACTION_ARGS as Record<string, z.ZodType>)[value.action];
    if (!schema) {
      ctx.addIssue({ code: 'custom', path: ['action'], message: `unknown action "${value.action}"; expected one of ${ACTION_NAMES.join(', ')}` });
      return z.NEVER;
    }
    if (value.ref && (BUILTIN_VARIABLES as readonly string[]).includes(value.ref)) {
      ctx.addIssue({ code: 'custom', path: ['ref'], message: `"${value.ref}" is a built-in variable` });
    }
    const parsed = schema.safeParse(value.args ?? {}, { reportInput: true });
    if (!parsed.success) {
      for (const issue of parsed.error.issues) ctx.addIssue({ ...issue, path: ['args', ...issue.path] } as never);
      return z.NEVER;
    }
    return { action: value.action, args: parsed.data, ref: value.ref } as PreStartAction;
  });

export const HEALTH_CHECK_DEFAULTS = {
  path: '/health',
  interval: 10,
  max_retries: 10,
  max_wait_time: 15,
  expected_status_code: 200,
  initial_delay: 60,
} as const;

const healthCheckSchema = z
  .object({
    path: nonEmpty('a URL path').regex(/^\//, { error: 'must start with /' }).default(HEALTH_CHECK_DEFAULTS.path),
    interval: seconds(0.05).default(HEALTH_CHECK_DEFAULTS.interval),
    max_retries: int(1, 10_000).default(HEALTH_CHECK_DEFAULTS.max_retries),
    max_wait_time: seconds(0.05).default(HEALTH_CHECK_DEFAULTS.max_wait_time),
    expected_status_code: int(100, 599).default(HEALTH_CHECK_DEFAULTS.expected_status_code),
    initial_delay: seconds(0).default(HEALTH_CHECK_DEFAULTS.initial_delay),
  })
  .strict();
export type HealthCheck = z.infer<typeof healthCheckSchema>;

const serviceSchema = z
  .object({
    pre_start_actions: z.array(actionSchema, { error: expected('a list of actions') }).default([]),
    start_command: z.union([nonEmpty('a command'), z.array(nonEmpty()).min(1, { error: 'must not be empty' })], { error: expected('a list of strings or a string') }),
    shell: nonEmpty('a shell path').default('/bin/bash'),
    port: int(1, 65535),
    health_check: healthCheckSchema.optional(),
  })
  .strict();

const modelSchema = z
  .object({
    name: nonEmpty('a model name'),
    model_path: nonEmpty('an absolute path').regex(/^\/./, { error: 'must be an absolute path (e.g. /models)' }),
    service: serviceSchema,
  })
  .strict();
export type ModelEntry = z.infer<typeof modelSchema>;
export type ServiceDefinition = ModelEntry['service'];

const definitionSchema = z
  .object({
    models: z.array(modelSchema, { error: expected('a list of models') }).min(1, { error: 'must name at least one model' }),
  })
  .strict();
export type ModelDefinition = z.infer<typeof definitionSchema>;

export interface LoadedDefinition {
  definition: ModelDefinition;
  /** The model this gateway serves: the first entry (the others are validated, not run). */
  model: ModelEntry;
  /** Absolute path of the file read. */
  file: string;
  /** Raw text, so a re-read can tell whether the definition changed. */
  text: string;
}

/** `models[0].service.port` from a zod/yaml path. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out || 'model_definition';
}

function issueMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  if (issue.code === 'invalid_type' && issue.message.startsWith('Invalid input')) {
    if (issue.input === undefined) return 'required';
    return `expected ${issue.expected}, got ${typeName(issue.input)}`;
  }
  if (issue.code === 'invalid_value' && issue.message.startsWith('Invalid option')) {
    return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return issue.message;
}

/** Parses and validates definition text; `source` names the file in messages. Never reads disk. */
export function parseModelDefinition(text: string): ModelDefinition {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new DefinitionError(
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        const where = pos ? `line ${pos.line}, column ${pos.col}` : 'unknown position';
        return { path: 'model_definition', message: `YAML syntax error at ${where}: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}` };
      }),
    );
  }
  const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  if (value === null || value === undefined) throw new DefinitionError([{ path: 'model_definition', message: 'file is empty; expected a mapping with "models"' }]);
  const result = definitionSchema.safeParse(value, { reportInput: true });
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const node = doc.getIn(issue.path as PropertyKey[] as (string | number)[], true);
    const range = isNode(node) ? node.range : undefined;
    const line = range ? ` (line ${lineCounter.linePos(range[0]).line})` : '';
    return { path: formatPath(issue.path), message: `${issueMessage(issue)}${line}` };
  });
  throw new DefinitionError(problems);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/**
 * Reads the definition from a model folder: `definitionPath` (relative to the folder) when
 * given, else model-definition.yaml, else model-definition.yml.
 */
export async function loadModelDefinition(modelFolder: string, definitionPath?: string): Promise<LoadedDefinition> {
  const folder = resolve(modelFolder);
  let folderStat;
  try {
    folderStat = await stat(folder);
  } catch (err) {
    throw new DefinitionError([{ path: 'model_folder', message: `${folder}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : (err as Error).message}` }]);
  }
  if (!folderStat.isDirectory()) throw new DefinitionError([{ path: 'model_folder', message: `${folder}: not a folder` }]);

  let file: string | undefined;
  if (definitionPath !== undefined) {
    const candidate = isAbsolute(definitionPath) ? definitionPath : join(folder, definitionPath);
    if (!(await isFile(candidate))) throw new DefinitionError([{ path: 'model_definition_path', message: `${candidate}: no such file` }]);
    file = candidate;
  } else {
    for (const name of DEFINITION_FILE_NAMES) {
      if (await isFile(join(folder, name))) {
        file = join(folder, name);
        break;
      }
    }
    if (!file) throw new DefinitionError([{ path: 'model_folder', message: `${folder}: no ${DEFINITION_FILE_NAMES.join(' or ')}` }]);
  }

  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new DefinitionError([{ path: 'model_definition', message: `${file}: cannot read: ${(err as Error).message}` }], file);
  }
  try {
    const definition = parseModelDefinition(text);
    return { definition, model: definition.models[0], file, text };
  } catch (err) {
    if (err instanceof DefinitionError) throw new DefinitionError(err.problems, file);
    throw err;
  }
}
