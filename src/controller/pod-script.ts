import type { ModelEntry, PreStartAction } from './model-definition.js';

/**
 * The shell script a Kubernetes replica's container runs: the definition's pre_start_actions
 * as POSIX shell, then `exec` of the start command, so the actions run inside the Pod (on its
 * filesystem, with its volumes) before the server starts, and the server is the container's
 * main process. Paths need no mapping there: the model folder is mounted at model_path.
 *
 * `{model_path}`, `{port}` and `{home}` are known when the script is built; an action's `ref`
 * becomes a shell variable, so `{ref}` in later arguments reads what the action produced.
 */

function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

const VAR_RE = /\{(\{?)([A-Za-z_][A-Za-z0-9_.]*)\}(\}?)/g;

function refVar(name: string): string {
  return `MG_REF_${name.replace(/\./g, '_')}`;
}

class Words {
  readonly #vars: Map<string, string>;
  /** `{name}` read from a shell variable at run time: action refs, and home ($HOME). */
  readonly #refs = new Map<string, string>([['home', 'HOME']]);

  constructor(vars: Record<string, string>) {
    this.#vars = new Map(Object.entries(vars));
  }

  addRef(name: string): void {
    this.#refs.set(name, refVar(name));
  }

  /** One shell word for `text`, with `{var}` substituted (refs read at run time). */
  word(text: string): string {
    const parts: string[] = [];
    let literal = '';
    let last = 0;
    for (const m of text.matchAll(VAR_RE)) {
      const [match, open, name, close] = m;
      literal += text.slice(last, m.index);
      last = m.index + match.length;
      if (open && close && (this.#vars.has(name) || this.#refs.has(name))) literal += `{${name}}`;
      else if (this.#vars.has(name)) literal += `${open}${this.#vars.get(name)}${close}`;
      else if (this.#refs.has(name)) {
        literal += open;
        parts.push(quote(literal), `"\${${this.#refs.get(name)}}"`);
        literal = close;
      } else literal += match;
    }
    literal += text.slice(last);
    parts.push(quote(literal));
    return parts.filter((p) => p !== "''").join('') || "''";
  }
}

function modeText(mode: number): string {
  return mode.toString(8);
}

function actionLines(action: PreStartAction, index: number, w: Words): string[] {
  const label = `pre_start_actions[${index}] (${action.action})`;
  const fail = `|| { echo ${quote(`${label} failed`)} >&2; exit 90; }`;
  const out: string[] = [];
  let result = "''";
  switch (action.action) {
    case 'mkdir':
      out.push(`mkdir -p ${w.word(action.args.path)} ${fail}`);
      result = w.word(action.args.path);
      break;
    case 'write_file': {
      const file = w.word(action.args.filename);
      out.push(`mkdir -p "$(dirname ${file})" ${fail}`);
      out.push(`printf '%s' ${w.word(action.args.body)} ${action.args.append ? '>>' : '>'} ${file} ${fail}`);
      out.push(`chmod ${modeText(action.args.mode)} ${file} ${fail}`);
      result = file;
      break;
    }
    case 'write_tempfile':
      out.push(`MG_TMP=$(mktemp) ${fail}`);
      out.push(`printf '%s' ${w.word(action.args.body)} > "$MG_TMP" ${fail}`);
      out.push(`chmod ${modeText(action.args.mode)} "$MG_TMP" ${fail}`);
      result = '"$MG_TMP"';
      break;
    case 'run_command': {
      const argv = action.args.command.map((a) => w.word(a)).join(' ');
      if (action.ref) {
        out.push(`MG_OUT=$(${argv}) ${fail}`);
        result = '"$(printf \'%s\' "$MG_OUT" | sed -e \'s/^[[:space:]]*//\' -e \'s/[[:space:]]*$//\')"';
      } else out.push(`${argv} ${fail}`);
      break;
    }
    case 'log':
      out.push(`echo ${w.word(action.args.message)}`);
      result = w.word(action.args.message);
      break;
  }
  if (action.ref) {
    out.push(`${refVar(action.ref)}=${result}`);
    w.addRef(action.ref);
  }
  return out;
}

/** `HOME` comes from the Pod's environment (/home/work, as in the seed's containers). */
export function podScript(model: ModelEntry, opts: { port: number }): string {
  const service = model.service;
  const w = new Words({ model_path: model.model_path, port: String(opts.port) });
  const lines = ['set -u', 'mkdir -p "$HOME" && cd "$HOME" || exit 90'];
  service.pre_start_actions.forEach((action, i) => lines.push(...actionLines(action, i, w)));
  if (Array.isArray(service.start_command)) lines.push(`exec ${service.start_command.map((a) => w.word(a)).join(' ')}`);
  else lines.push(`exec ${quote(service.shell)} -c ${w.word(service.start_command)}`);
  return `${lines.join('\n')}\n`;
}
