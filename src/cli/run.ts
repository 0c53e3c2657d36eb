import { CliError, UsageError, processIo, type CliCommand, type CliIo } from './cli-io.js';
import { endpointCommand, routesCommand } from './endpoint-commands.js';
import { serviceCommand } from './service-commands.js';
import { tokenCommand } from './token-commands.js';

/**
 * The `modelgate` subcommands. Add a command by appending to COMMANDS (e.g. `endpoint`,
 * `routes`, `service`); each one parses its own arguments and returns an exit code.
 */
export const COMMANDS: readonly CliCommand[] = [endpointCommand, routesCommand, tokenCommand, serviceCommand];

/** The command list alone, for `modelgate --help`. */
export function commandSummary(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return ['Commands:', ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`), '', 'Run `modelgate <command> --help` for its options.', ''].join('\n');
}

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: modelgate [--config FILE] [--ephemeral]     run the gateway',
    '       modelgate <command> [options]              run a command',
    '',
    'commands:',
    ...lines,
    '',
    'Run `modelgate <command> --help` for its options.',
    '',
  ].join('\n');
}

/**
 * Runs a subcommand. `argv` is what follows the program name (process.argv.slice(2)).
 * Returns the exit code: 0 success, 1 failure, 2 usage error. Errors print one line to stderr.
 */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(help());
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    io.stderr(`modelgate: unknown command "${name}" (commands: ${COMMANDS.map((c) => c.name).join(', ')}; see modelgate --help)\n`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`modelgate ${command.name}: ${err.message} (see modelgate ${command.name} --help)\n`);
      return 2;
    }
    if (err instanceof CliError) {
      io.stderr(`modelgate ${command.name}: ${err.message}\n`);
      return err.exitCode;
    }
    io.stderr(`modelgate ${command.name}: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
}
