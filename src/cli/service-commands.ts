import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError, type CliCommand } from './cli-io.js';
import { AdminClient, nameArg, parseCommandArgs, printJson, table } from './admin-client.js';

const SERVICE_USAGE = `usage:
  modelgate service create NAME --model-folder DIR [--replicas N] [--public]
                           [--definition FILE] [--env KEY=VALUE]...
                                                     run a model service (controller)
  modelgate service ls                               list services and their status
  modelgate service get NAME [--logs N]              one service with its replicas
  modelgate service rm NAME                          drain and stop a service
  modelgate service autoscale NAME --min N --max N [--target N]
                           [--stable-window S] [--panic-window S] [--scale-down-delay S]
                           [--scale-to-zero-grace S] [--rule JSON]... [--rules-file FILE]
                                                     let the controller scale the service
  modelgate service autoscale NAME --off             back to the fixed replica count
  modelgate service events NAME                      recent scaling decisions, restarts,
                                                     health changes (newest first)
options:
      --admin-url URL     admin API (default http://ADMIN_HOST:ADMIN_PORT)
      --admin-token T     admin token (default ADMIN_TOKEN, then DATA_DIR/admin-token)
      --json              print the API's JSON instead of a table
      --config FILE       settings file (for ADMIN_HOST/ADMIN_PORT/ADMIN_TOKEN/DATA_DIR)
`;

interface ReplicaView {
  id: string;
  status: string;
  port: number | null;
  pid: number | null;
  restarts: number;
  last_error: string | null;
  runtime?: string;
  node?: string | null;
  host?: string | null;
}
interface ServiceView {
  name: string;
  autoscaling?: { min_replicas: number; max_replicas: number; target_in_flight?: number; status: { desired: number; current: number; last_decision: { at: string; from: number; to: number; reason: string } | null } };
  status: string;
  replicas: number;
  healthy_replicas: number;
  public: boolean;
  url?: string;
  model_folder: string;
  runtime?: string;
  error: string | null;
  routes: ReplicaView[];
}

function printService(io: { stdout(t: string): void }, s: ServiceView): void {
  io.stdout(
    table(
      ['NAME', 'STATUS', 'REPLICAS', 'PUBLIC', 'URL', 'MODEL FOLDER', 'RUNTIME'],
      [[s.name, s.status, `${s.healthy_replicas}/${s.replicas}`, s.public ? 'yes' : 'no', s.url, s.model_folder, s.runtime ?? 'process']],
    ),
  );
  if (s.error) io.stdout(`error: ${s.error}\n`);
  const a = s.autoscaling;
  if (a) {
    const target = a.target_in_flight === undefined ? '' : `, target ${a.target_in_flight} in flight per replica`;
    io.stdout(`autoscaling: ${a.min_replicas}-${a.max_replicas} replicas${target}; desired ${a.status.desired}, current ${a.status.current}\n`);
    const d = a.status.last_decision;
    if (d) io.stdout(`last decision: ${d.at} ${d.from} → ${d.to}: ${d.reason}\n`);
  }
  if (s.routes.length > 0) {
    io.stdout('\n');
    io.stdout(
      table(
        // New columns go after the existing ones, so scripts reading the old ones keep working.
        ['ROUTE', 'STATUS', 'PORT', 'PID', 'RESTARTS', 'LAST ERROR', 'RUNTIME', 'NODE', 'HOST'],
        s.routes.map((r) => [r.id, r.status, r.port, r.pid, r.restarts, r.last_error, r.runtime ?? s.runtime ?? 'process', r.node, r.host]),
      ),
    );
  }
}

export const serviceCommand: CliCommand = {
  name: 'service',
  summary: 'create, list, show and remove model services run by the controller (admin API)',
  usage: SERVICE_USAGE,
  async run(args, io) {
    const [sub, ...rest] = args;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      io.stdout(SERVICE_USAGE);
      return sub === undefined ? 2 : 0;
    }
    const { values, positionals } = parseCommandArgs(rest, {
      'model-folder': { type: 'string' },
      replicas: { type: 'string' },
      public: { type: 'boolean' },
      definition: { type: 'string' },
      env: { type: 'string', multiple: true },
      logs: { type: 'string' },
      min: { type: 'string' },
      max: { type: 'string' },
      target: { type: 'string' },
      'stable-window': { type: 'string' },
      'panic-window': { type: 'string' },
      'scale-down-delay': { type: 'string' },
      'scale-to-zero-grace': { type: 'string' },
      rule: { type: 'string', multiple: true },
      'rules-file': { type: 'string' },
      off: { type: 'boolean' },
    });
    if (values.help) {
      io.stdout(SERVICE_USAGE);
      return 0;
    }
    const client = () => AdminClient.from(values, io);
    switch (sub) {
      case 'create': {
        const name = nameArg(positionals);
        const folder = values['model-folder'] as string | undefined;
        if (!folder) throw new UsageError('--model-folder DIR is required');
        const body: Record<string, unknown> = { name: decodeURIComponent(name), model_folder: resolve(folder) };
        if (values.replicas !== undefined) {
          if (!/^\d+$/.test(values.replicas as string)) throw new UsageError('--replicas must be a whole number');
          body.replicas = Number(values.replicas);
        }
        if (values.public) body.public = true;
        if (values.definition !== undefined) body.model_definition_path = values.definition;
        const env: Record<string, string> = {};
        for (const pair of (values.env as string[] | undefined) ?? []) {
          const eq = pair.indexOf('=');
          if (eq <= 0) throw new UsageError(`--env ${pair}: expected KEY=VALUE`);
          env[pair.slice(0, eq)] = pair.slice(eq + 1);
        }
        if (Object.keys(env).length > 0) body.env = env;
        const { body: created } = await client().call('POST', '/v1/services', body);
        if (values.json) printJson(io, created);
        else printService(io, created as ServiceView);
        return 0;
      }
      case 'ls':
      case 'list': {
        if (positionals.length > 0) throw new UsageError('ls takes no arguments');
        const { body } = await client().call('GET', '/v1/services');
        const services = (body as { services: ServiceView[] }).services;
        if (values.json) printJson(io, body);
        else
          io.stdout(
            table(
              ['NAME', 'STATUS', 'REPLICAS', 'PUBLIC', 'URL'],
              services.map((s) => [s.name, s.status, `${s.healthy_replicas}/${s.replicas}`, s.public ? 'yes' : 'no', s.url]),
            ),
          );
        return 0;
      }
      case 'get': {
        const name = nameArg(positionals);
        const logs = values.logs as string | undefined;
        if (logs !== undefined && !/^\d+$/.test(logs)) throw new UsageError('--logs must be a whole number');
        const { body } = await client().call('GET', `/v1/services/${name}${logs === undefined ? '' : `?logs=${logs}`}`);
        if (values.json) printJson(io, body);
        else printService(io, body as ServiceView);
        return 0;
      }
      case 'rm':
      case 'delete': {
        const name = nameArg(positionals);
        await client().call('DELETE', `/v1/services/${name}`);
        if (values.json) printJson(io, { deleted: decodeURIComponent(name) });
        else io.stdout(`service ${decodeURIComponent(name)} stopped and removed\n`);
        return 0;
      }
      case 'autoscale': {
        const name = nameArg(positionals);
        const { body } = await client().call('PATCH', `/v1/services/${name}`, { autoscaling: values.off ? null : autoscalingFromFlags(values) });
        if (values.json) printJson(io, body);
        else printService(io, body as ServiceView);
        return 0;
      }
      case 'events': {
        const name = nameArg(positionals);
        const { body } = await client().call('GET', `/v1/services/${name}/events`);
        if (values.json) printJson(io, body);
        else {
          const events = (body as { events: { at: string; kind: string; message: string }[] }).events;
          io.stdout(table(['AT', 'KIND', 'EVENT'], events.map((e) => [e.at, e.kind, e.message])));
        }
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand "${sub}" (create, ls, get, rm, autoscale, events)`);
    }
  },
};

const NUMBER_FLAGS: [flag: string, field: string][] = [
  ['min', 'min_replicas'],
  ['max', 'max_replicas'],
  ['target', 'target_in_flight'],
  ['stable-window', 'stable_window_s'],
  ['panic-window', 'panic_window_s'],
  ['scale-down-delay', 'scale_down_delay_s'],
  ['scale-to-zero-grace', 'scale_to_zero_grace_s'],
];

/** The `autoscaling` object from the flags; the API checks the values (ADM_INVALID names them). */
function autoscalingFromFlags(values: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [flag, field] of NUMBER_FLAGS) {
    const raw = values[flag] as string | undefined;
    if (raw === undefined) continue;
    const n = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(n)) throw new UsageError(`--${flag} must be a number`);
    out[field] = n;
  }
  if (out.min_replicas === undefined || out.max_replicas === undefined) throw new UsageError('--min N and --max N are required (or --off)');
  const rules: unknown[] = [];
  const file = values['rules-file'] as string | undefined;
  if (file !== undefined) {
    // A rules export of the seed system: a JSON array of rules (or {"rules": [...]}).
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new UsageError(`--rules-file ${file}: ${(err as Error).message}`);
    }
    const list = Array.isArray(parsed) ? parsed : (parsed as { rules?: unknown })?.rules;
    if (!Array.isArray(list)) throw new UsageError(`--rules-file ${file}: expected a JSON array of rules`);
    rules.push(...list);
  }
  for (const text of (values.rule as string[] | undefined) ?? []) {
    try {
      rules.push(JSON.parse(text));
    } catch (err) {
      throw new UsageError(`--rule: not JSON (${(err as Error).message})`);
    }
  }
  if (rules.length > 0) out.rules = rules;
  return out;
}
