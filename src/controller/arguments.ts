/**
 * Turns arguments written for the seed's container into arguments for this machine:
 * container paths (the definition's model_path, /home/work) become the replica's real
 * folders, and `{name}` variables (built-ins and action refs) are substituted.
 *
 * Paths are rewritten only at a token boundary (start of the string, after whitespace, a
 * quote, `=`, `:`, `,`, `;` or `(`, and followed by `/`, the end or such a separator), so
 * `/models` is mapped in `--dir=/models/x` but not in `/data/models` or `/modelsX`.
 */

const BEFORE = String.raw`(?<=^|[\s='":,;(])`;
const AFTER = String.raw`(?=$|[/\s'":,;)])`;

function escapeRe(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export class ArgumentMapper {
  readonly #pathRe: RegExp | null;
  readonly #targets: Map<string, string>;
  readonly #vars = new Map<string, string>();

  /** `mappings`: container path → real path. */
  constructor(mappings: Record<string, string>, vars: Record<string, string> = {}) {
    const from = Object.keys(mappings)
      .map((p) => (p.length > 1 ? p.replace(/\/+$/, '') : p))
      .sort((a, b) => b.length - a.length);
    this.#targets = new Map(Object.entries(mappings).map(([k, v]) => [k.length > 1 ? k.replace(/\/+$/, '') : k, v]));
    this.#pathRe = from.length > 0 ? new RegExp(`${BEFORE}(${from.map(escapeRe).join('|')})${AFTER}`, 'g') : null;
    for (const [k, v] of Object.entries(vars)) this.#vars.set(k, v);
  }

  setVar(name: string, value: string): void {
    this.#vars.set(name, value);
  }

  getVar(name: string): string | undefined {
    return this.#vars.get(name);
  }

  mapPaths(text: string): string {
    if (!this.#pathRe) return text;
    return text.replace(this.#pathRe, (match) => this.#targets.get(match) ?? match);
  }

  /**
   * `{name}` → its value when `name` is a known variable; `{{name}}` → a literal `{name}`.
   * Unknown names are left alone, so braces in code bodies (f-strings, JSON) survive.
   */
  substitute(text: string): string {
    return text.replace(/\{(\{?)([A-Za-z_][A-Za-z0-9_.]*)\}(\}?)/g, (match, open: string, name: string, close: string) => {
      if (!this.#vars.has(name)) return match;
      if (open && close) return `{${name}}`;
      return `${open}${this.#vars.get(name)}${close}`;
    });
  }

  /** Paths first, then variables, so a substituted real path is never mapped twice. */
  map(text: string): string {
    return this.substitute(this.mapPaths(text));
  }
}

/**
 * Replaces the definition's literal port with the replica's port wherever it stands as a whole
 * number (`8000`, `--port=8000`, `0.0.0.0:8000`), so unmodified seed definitions run several
 * replicas side by side.
 */
export function replacePort(text: string, from: number, to: number): string {
  if (from === to) return text;
  return text.replace(new RegExp(String.raw`(?<![\w.])${from}(?![\w.])`, 'g'), String(to));
}
