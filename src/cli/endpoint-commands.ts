import { CliError, UsageError, type CliCommand } from './cli-io.js';
import { AdminClient, nameArg, parseCommandArgs, parseRouteSpec, printJson, readJsonFile, table } from './admin-client.js';

const COMMON = `      --admin-url URL     admin API (default http://ADMIN_HOST:ADMIN_PORT)
      --admin-token T     admin token (default ADMIN_TOKEN, then DATA_DIR/admin-token)
      --json              print the API's JSON instead of a table
      --config FILE       settings file (for ADMIN_HOST/ADMIN_PORT/ADMIN_TOKEN/DATA_DIR)`;

const ENDPOINT_USAGE = `usage:
  modelgate endpoint ls                              list endpoints
  modelgate endpoint get NAME                        one endpoint with its routes
  modelgate endpoint put NAME [--public|--private] [--route [ID=]URL[,weight=N][,status=S]]...
                              [--file BODY.json]     create or replace an endpoint
  modelgate endpoint rm NAME                         delete an endpoint (its tokens stop working)
options:
${COMMON}
`;

const ROUTES_USAGE = `usage:
  modelgate routes set NAME --route [ID=]URL[,weight=N][,status=S] ... [--expected-version N]
  modelgate routes set NAME --file ROUTES.json       ({"routes":[...]} or a bare array)
      Replaces the endpoint's route table (routes added with status healthy unless given).
options:
${COMMON}
`;

interface RouteView {
  id: string;
  url: string;
  weight: number;
  status: string;
}
interface EndpointView {
  name: string;
  id: string;
  public: boolean;
  version: number;
  url: string;
  routes: RouteView[];
}

function healthy(e: EndpointView): string {
  return `${e.routes.filter((r) => r.status === 'healthy').length}/${e.routes.length}`;
}

function printEndpoint(io: { stdout(t: string): void }, e: EndpointView): void {
  io.stdout(
    table(['NAME', 'ID', 'PUBLIC', 'VERSION', 'HEALTHY', 'URL'], [[e.name, e.id, e.public ? 'yes' : 'no', e.version, healthy(e), e.url]]),
  );
  if (e.routes.length > 0) {
    io.stdout('\n');
    io.stdout(table(['ROUTE', 'STATUS', 'WEIGHT', 'URL'], e.routes.map((r) => [r.id, r.status, r.weight, r.url])));
  }
}

function routesFrom(values: Record<string, unknown>): Record<string, unknown>[] | undefined {
  const specs = values.route as string[] | undefined;
  if (specs === undefined || specs.length === 0) return undefined;
  return specs.map((s) => parseRouteSpec(s));
}

export const endpointCommand: CliCommand = {
  name: 'endpoint',
  summary: 'list, show, create/replace and delete endpoints (admin API)',
  usage: ENDPOINT_USAGE,
  async run(args, io) {
    const [sub, ...rest] = args;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      io.stdout(ENDPOINT_USAGE);
      return sub === undefined ? 2 : 0;
    }
    const { values, positionals } = parseCommandArgs(rest, {
      public: { type: 'boolean' },
      private: { type: 'boolean' },
      route: { type: 'string', multiple: true },
      file: { type: 'string', short: 'f' },
    });
    if (values.help) {
      io.stdout(ENDPOINT_USAGE);
      return 0;
    }
    const client = () => AdminClient.from(values, io);
    switch (sub) {
      case 'ls':
      case 'list': {
        if (positionals.length > 0) throw new UsageError('ls takes no arguments');
        const { body } = await client().call('GET', '/v1/endpoints');
        const endpoints = (body as { endpoints: EndpointView[] }).endpoints;
        if (values.json) printJson(io, body);
        else io.stdout(table(['NAME', 'PUBLIC', 'VERSION', 'HEALTHY', 'URL'], endpoints.map((e) => [e.name, e.public ? 'yes' : 'no', e.version, healthy(e), e.url])));
        return 0;
      }
      case 'get': {
        const { body } = await client().call('GET', `/v1/endpoints/${nameArg(positionals)}`);
        if (values.json) printJson(io, body);
        else printEndpoint(io, body as EndpointView);
        return 0;
      }
      case 'put': {
        const name = nameArg(positionals);
        if (values.public && values.private) throw new UsageError('give --public or --private, not both');
        let payload: Record<string, unknown> = {};
        if (values.file !== undefined) {
          const fromFile = readJsonFile(values.file as string);
          if (fromFile === null || typeof fromFile !== 'object' || Array.isArray(fromFile)) throw new CliError(`--file ${String(values.file)}: must hold a JSON object`);
          payload = fromFile as Record<string, unknown>;
        }
        if (values.public) payload.public = true;
        if (values.private) payload.public = false;
        const routes = routesFrom(values);
        if (routes) payload.routes = routes;
        const { status, body } = await client().call('PUT', `/v1/endpoints/${name}`, payload);
        if (values.json) printJson(io, body);
        else {
          io.stderr(`endpoint ${(body as EndpointView).name} ${status === 201 ? 'created' : 'replaced'}\n`);
          printEndpoint(io, body as EndpointView);
        }
        return 0;
      }
      case 'rm':
      case 'delete': {
        const name = nameArg(positionals);
        await client().call('DELETE', `/v1/endpoints/${name}`);
        if (values.json) printJson(io, { deleted: decodeURIComponent(name) });
        else io.stdout(`endpoint ${decodeURIComponent(name)} deleted\n`);
        return 0;
      }
      default:
        throw new UsageError(`unknown subcommand "${sub}" (ls, get, put, rm)`);
    }
  },
};

export const routesCommand: CliCommand = {
  name: 'routes',
  summary: "replace an endpoint's routes (admin API)",
  usage: ROUTES_USAGE,
  async run(args, io) {
    const [sub, ...rest] = args;
    if (sub === undefined || sub === '--help' || sub === '-h') {
      io.stdout(ROUTES_USAGE);
      return sub === undefined ? 2 : 0;
    }
    const { values, positionals } = parseCommandArgs(rest, {
      route: { type: 'string', multiple: true },
      file: { type: 'string', short: 'f' },
      'expected-version': { type: 'string' },
    });
    if (values.help) {
      io.stdout(ROUTES_USAGE);
      return 0;
    }
    if (sub !== 'set') throw new UsageError(`unknown subcommand "${sub}" (set)`);
    const name = nameArg(positionals);
    let routes = routesFrom(values);
    if (values.file !== undefined) {
      if (routes) throw new UsageError('give --route or --file, not both');
      const fromFile = readJsonFile(values.file as string);
      const list = Array.isArray(fromFile) ? fromFile : (fromFile as { routes?: unknown } | null)?.routes;
      if (!Array.isArray(list)) throw new CliError(`--file ${String(values.file)}: must hold {"routes":[...]} or an array of routes`);
      routes = list as Record<string, unknown>[];
    }
    if (!routes) throw new UsageError('at least one --route (or --file) is required; an empty table is --file with []');
    const payload: Record<string, unknown> = { routes };
    const expected = values['expected-version'] as string | undefined;
    if (expected !== undefined) {
      if (!/^\d+$/.test(expected)) throw new UsageError('--expected-version must be a whole number');
      payload.expected_version = Number(expected);
    }
    const { body } = await AdminClient.from(values, io).call('PUT', `/v1/endpoints/${name}/routes`, payload);
    if (values.json) printJson(io, body);
    else printEndpoint(io, body as EndpointView);
    return 0;
  },
};
