/** What a CLI command may touch, injectable for tests. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Environment for settings; undefined = the process environment (read by config/ only). */
  env?: NodeJS.ProcessEnv;
  /** HTTP client for the admin API (the global fetch by default). */
  fetch?: typeof fetch;
}

/** A bad command line: printed as one line with a hint, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A failure the user should read as one line (exit code 1). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export interface CliCommand {
  name: string;
  summary: string;
  /** Full usage text printed by `modelgate NAME --help`. */
  usage: string;
  run(args: string[], io: CliIo): Promise<number>;
}

export function processIo(): CliIo {
  return {
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
}
