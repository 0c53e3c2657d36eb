import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import type { ArgumentMapper } from './arguments.js';
import { lineSplitter } from './log-ring.js';
import type { PreStartAction } from './model-definition.js';
import { copyUp } from './model-overlay.js';
import type { RunAs } from './run-as.js';

/**
 * Runs a definition's pre_start_actions in order, in the replica's working directory. Each
 * action's string arguments go through the ArgumentMapper (container paths → real folders,
 * `{name}` variables); an action with `ref` stores its result for later arguments:
 * write_file → the file's path, write_tempfile → the temp file's path, run_command → its
 * trimmed stdout (also `{ref.out}`, `{ref.err}`), mkdir → the directory, log → the message.
 * The first failing action stops the list; its error names the action.
 */

export interface ActionContext {
  mapper: ArgumentMapper;
  /** Relative paths resolve here (the replica's /home/work). */
  cwd: string;
  /** Where write_tempfile puts its files. */
  tmpDir: string;
  /** The replica's model_path overlay: writes under it are copied up first. */
  overlayDir: string;
  env: Record<string, string>;
  log: (line: string) => void;
  signal: AbortSignal;
  /** Upper bound for one run_command. */
  commandTimeoutMs?: number;
  /** CONTROLLER_RUN_AS: run_command runs as this user. */
  runAs?: RunAs | null;
  /**
   * write_file and mkdir must stay inside this directory (the replica's own, with
   * CONTROLLER_RUN_AS): the gateway writes them with its own rights, which must not become a
   * way for a model definition to write elsewhere on the machine.
   */
  confineTo?: string;
}

export class ActionError extends Error {
  constructor(index: number, action: string, message: string) {
    super(`pre_start_actions[${index}] (${action}): ${message}`);
    this.name = 'ActionError';
  }
}

const MAX_CAPTURE_BYTES = 1024 * 1024;

export async function runPreStartActions(actions: readonly PreStartAction[], ctx: ActionContext): Promise<void> {
  for (let i = 0; i < actions.length; i++) {
    if (ctx.signal.aborted) throw new ActionError(i, actions[i].action, 'cancelled');
    const action = actions[i];
    try {
      const result = await runAction(action, ctx);
      if (action.ref) {
        ctx.mapper.setVar(action.ref, result.value);
        if (result.out !== undefined) ctx.mapper.setVar(`${action.ref}.out`, result.out);
        if (result.err !== undefined) ctx.mapper.setVar(`${action.ref}.err`, result.err);
      }
    } catch (err) {
      if (err instanceof ActionError) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new ActionError(i, action.action, e.code && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message);
    }
  }
}

/**
 * The mapped path, normalised: `overlay/sub/../file` must be checked and written as
 * `overlay/file`. Left raw, the kernel resolves `overlay/sub` (a symlink into the user's folder)
 * first, so `..` lands in the user's real folder while the copy-up check saw the overlay.
 */
function resolvePath(ctx: ActionContext, raw: string): string {
  const path = resolve(ctx.cwd, ctx.mapper.map(raw));
  if (ctx.confineTo !== undefined) {
    const rel = relative(ctx.confineTo, path);
    if (rel === '' || rel.startsWith('..') || rel.startsWith(sep)) {
      throw new Error(`${raw} is outside the replica's directories (/home/work, the model path, the temp folder)`);
    }
  }
  return path;
}

interface ActionResult {
  value: string;
  out?: string;
  err?: string;
}

async function runAction(action: PreStartAction, ctx: ActionContext): Promise<ActionResult> {
  switch (action.action) {
    case 'write_file': {
      const file = resolvePath(ctx, action.args.filename);
      const body = ctx.mapper.map(action.args.body);
      await copyUp(ctx.overlayDir, file, action.args.append);
      await mkdir(dirname(file), { recursive: true });
      if (action.args.append) await appendFile(file, body, { mode: action.args.mode });
      else await writeFile(file, body, { mode: action.args.mode });
      await chmod(file, action.args.mode);
      ctx.log(`[pre-start] write_file ${file}`);
      return { value: file };
    }
    case 'write_tempfile': {
      const file = join(ctx.tmpDir, `tmp${randomBytes(6).toString('hex')}.py`);
      await mkdir(ctx.tmpDir, { recursive: true });
      await writeFile(file, ctx.mapper.map(action.args.body), { mode: action.args.mode });
      await chmod(file, action.args.mode);
      ctx.log(`[pre-start] write_tempfile ${file}`);
      return { value: file };
    }
    case 'mkdir': {
      const dir = resolvePath(ctx, action.args.path);
      await copyUp(ctx.overlayDir, dir, false);
      await mkdir(dir, { recursive: true });
      ctx.log(`[pre-start] mkdir ${dir}`);
      return { value: dir };
    }
    case 'log': {
      const message = ctx.mapper.substitute(action.args.message);
      ctx.log(action.args.debug ? `[pre-start] [debug] ${message}` : `[pre-start] ${message}`);
      return { value: message };
    }
    case 'run_command':
      return runCommand(action.args.command.map((a) => ctx.mapper.map(a)), ctx);
  }
}

/** Runs one command (no shell), logging its output; a non-zero exit fails the action. */
function runCommand(argv: string[], ctx: ActionContext): Promise<ActionResult> {
  ctx.log(`[pre-start] run_command ${argv.map((a) => JSON.stringify(a)).join(' ')}`);
  return new Promise((resolve, reject) => {
    const ids = ctx.runAs ? { uid: ctx.runAs.uid, gid: ctx.runAs.gid } : {};
    const child = spawn(argv[0], argv.slice(1), { cwd: ctx.cwd, env: ctx.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...ids });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    const outLines = lineSplitter((line) => ctx.log(`[pre-start] out: ${line}`));
    const errLines = lineSplitter((line) => ctx.log(`[pre-start] err: ${line}`));
    let settled = false;
    const killGroup = () => {
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {}
      }
    };
    const timeoutMs = ctx.commandTimeoutMs ?? 300_000;
    const timer = setTimeout(() => {
      killGroup();
      finish(new Error(`timed out after ${Math.round(timeoutMs / 1000)} s`));
    }, timeoutMs);
    const onAbort = () => {
      killGroup();
      finish(new Error('cancelled'));
    };
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    function finish(error: Error | null, result?: ActionResult) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ctx.signal.removeEventListener('abort', onAbort);
      if (error) reject(error);
      else resolve(result!);
    }
    child.stdout.on('data', (chunk: Buffer) => {
      outLines.write(chunk);
      if (outBytes < MAX_CAPTURE_BYTES) out.push(chunk);
      outBytes += chunk.length;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      errLines.write(chunk);
      if (errBytes < MAX_CAPTURE_BYTES) err.push(chunk);
      errBytes += chunk.length;
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      finish(new Error(e.code === 'ENOENT' ? `command not found: ${argv[0]}` : e.message));
    });
    child.on('close', (code, signal) => {
      outLines.end();
      errLines.end();
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) finish(null, { value: stdout.trim(), out: stdout, err: stderr });
      else {
        const last = stderr.trim().split('\n').pop();
        finish(new Error(`${argv[0]} exited with ${signal ? `signal ${signal}` : `code ${code}`}${last ? `: ${last}` : ''}`));
      }
    });
  });
}
