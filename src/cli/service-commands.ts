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
      default:
        throw new UsageError(`unknown subcommand "${sub}" (create, ls, get, rm)`);
    }
  },
};
