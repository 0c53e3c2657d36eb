import { mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DefinitionError, HEALTH_CHECK_DEFAULTS, loadModelDefinition, parseModelDefinition } from '../../../src/controller/model-definition.js';
import { SEED_EXAMPLE } from '../../support/seed-example.js';


function problems(text: string): string[] {
  try {
    parseModelDefinition(text);
  } catch (err) {
    expect(err).toBeInstanceOf(DefinitionError);
    return (err as DefinitionError).problems.map((p) => `${p.path}: ${p.message}`);
  }
  throw new Error('expected the definition to be refused');
}

const minimal = (service: string) => `models:\n  - name: m\n    model_path: /models\n    service:\n${service}`;

describe('model definition', () => {
  it('parses the seed example with the seed defaults', () => {
    const def = parseModelDefinition(SEED_EXAMPLE);
    const model = def.models[0];
    expect(model.name).toBe('simple-http-server');
    expect(model.service.start_command).toEqual(['python', '-m', 'http.server', '--directory', '/home/work', '8000']);
    expect(model.service.shell).toBe('/bin/bash');
    expect(model.service.pre_start_actions).toEqual([]);
    expect(model.service.health_check).toEqual({ ...HEALTH_CHECK_DEFAULTS, path: '/', max_retries: 5 });
  });

  it('uses /health, 10, 10 s, 15 s, 200, 60 s when a health_check gives nothing', () => {
    const def = parseModelDefinition(minimal('      start_command: [x]\n      port: 1\n      health_check: {}\n'));
    expect(def.models[0].service.health_check).toEqual({ path: '/health', interval: 10, max_retries: 10, max_wait_time: 15, expected_status_code: 200, initial_delay: 60 });
  });

  it('leaves health_check unset when absent (TCP check)', () => {
    expect(parseModelDefinition(minimal('      start_command: "run {model_path}"\n      port: 1\n')).models[0].service.health_check).toBeUndefined();
  });

  it('accepts every action with its defaults, True/False booleans and refs', () => {
    const def = parseModelDefinition(
      minimal(`      pre_start_actions:
        - action: write_file
          args: {filename: /models/a, body: hi}
        - action: write_file
          args: {filename: b, body: x, mode: 600, append: True}
        - action: write_tempfile
          ref: script
          args: {body: "print(1)", mode: "755"}
        - action: run_command
          ref: out
          args: {command: [echo, hi]}
        - action: mkdir
          args: {path: /models/site}
        - action: log
          args: {message: hello, debug: False}
        - action: log
          args: {message: quoted, debug: "True"}
      start_command: [python3, "{script}"]
      port: 8000
`),
    );
    const actions = def.models[0].service.pre_start_actions;
    expect(actions[0]).toEqual({ action: 'write_file', args: { filename: '/models/a', body: 'hi', mode: 0o644, append: false }, ref: undefined });
    expect(actions[1].args).toEqual({ filename: 'b', body: 'x', mode: 0o600, append: true });
    expect(actions[2]).toEqual({ action: 'write_tempfile', args: { body: 'print(1)', mode: 0o755 }, ref: 'script' });
    expect(actions[3]).toMatchObject({ action: 'run_command', args: { command: ['echo', 'hi'] }, ref: 'out' });
    expect(actions[5].args).toEqual({ message: 'hello', debug: false });
    expect(actions[6].args).toEqual({ message: 'quoted', debug: true });
  });

  it('names the YAML path of a wrong type', () => {
    expect(problems(minimal('      start_command: [x]\n      port: "8000"\n'))).toEqual(['models[0].service.port: expected integer, got string (line 6)']);
  });

  it('names every missing required field', () => {
    expect(problems('models:\n  - service: {}\n')).toEqual(
      expect.arrayContaining(['models[0].name: required', 'models[0].model_path: required', 'models[0].service.start_command: required', 'models[0].service.port: required']),
    );
    expect(problems('other: 1\n')).toEqual(expect.arrayContaining(['models: required', 'model_definition: unknown field "other" (line 1)']));
  });

  it('rejects unknown keys at every level', () => {
    const found = problems(minimal('      start_command: [x]\n      port: 1\n      helth_check: {}\n      health_check: {pth: /}\n'));
    expect(found).toContain('models[0].service: unknown field "helth_check" (line 5)');
    expect(found).toContain('models[0].service.health_check: unknown field "pth" (line 8)');
  });

  it('rejects an unknown action and wrong action arguments by path', () => {
    const found = problems(
      minimal(`      pre_start_actions:
        - action: download
        - action: mkdir
          args: {}
        - action: write_file
          args: {filename: a, mode: "999", append: maybe, extra: 1}
        - action: run_command
          args: {command: "echo hi"}
        - action: log
          ref: port
          args: {message: x}
      start_command: [x]
      port: 1
`),
    );
    expect(found[0]).toMatch(/^models\[0\]\.service\.pre_start_actions\[0\]\.action: unknown action "download"; expected one of write_file, write_tempfile, run_command, mkdir, log/);
    expect(found).toContain('models[0].service.pre_start_actions[1].args.path: required');
    expect(found.join('\n')).toMatch(/pre_start_actions\[2\]\.args\.mode: expected an octal file mode like "644", got "999"/);
    expect(found.join('\n')).toMatch(/pre_start_actions\[2\]\.args\.append: expected True or False, got string/);
    expect(found.join('\n')).toMatch(/pre_start_actions\[2\]\.args: unknown field "extra"/);
    expect(found.join('\n')).toMatch(/pre_start_actions\[3\]\.args\.command: expected a list of strings, got string/);
    expect(found.join('\n')).toMatch(/pre_start_actions\[4\]\.ref: "port" is a built-in variable/);
  });

  it('checks ranges and formats', () => {
    const found = problems(
      minimal('      start_command: []\n      port: 70000\n      health_check: {path: health, max_retries: 0, expected_status_code: 2000, interval: -1}\n'),
    );
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^models\[0\]\.service\.start_command: must not be empty/),
        expect.stringMatching(/^models\[0\]\.service\.port: must be at most 65535/),
        expect.stringMatching(/^models\[0\]\.service\.health_check\.path: must start with \//),
        expect.stringMatching(/^models\[0\]\.service\.health_check\.max_retries: must be at least 1/),
        expect.stringMatching(/^models\[0\]\.service\.health_check\.expected_status_code: must be at most 599/),
        expect.stringMatching(/^models\[0\]\.service\.health_check\.interval: must be at least/),
      ]),
    );
    expect(problems('models:\n  - name: m\n    model_path: models\n    service: {start_command: [x], port: 1}\n')).toEqual([
      expect.stringMatching(/^models\[0\]\.model_path: must be an absolute path/),
    ]);
    expect(problems('models: []\n')).toEqual(['models: must name at least one model (line 1)']);
    expect(problems('models: 3\n')).toEqual(['models: expected a list of models, got integer (line 1)']);
  });

  it('reports a YAML syntax error with its line', () => {
    expect(problems('models:\n  - name: x\n    service: [a, b\n    port: 1\n')[0]).toMatch(/^model_definition: YAML syntax error at line \d+, column \d+: /);
    expect(problems('')).toEqual(['model_definition: file is empty; expected a mapping with "models"']);
  });
});

describe('loadModelDefinition', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mg-def-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds model-definition.yaml, then .yml, then a given name', async () => {
    const a = join(dir, 'a');
    mkdirSync(a);
    writeFileSync(join(a, 'model-definition.yml'), SEED_EXAMPLE);
    expect((await loadModelDefinition(a)).file).toBe(join(a, 'model-definition.yml'));
    writeFileSync(join(a, 'model-definition.yaml'), SEED_EXAMPLE);
    expect((await loadModelDefinition(a)).file).toBe(join(a, 'model-definition.yaml'));
    writeFileSync(join(a, 'other.yaml'), SEED_EXAMPLE);
    const loaded = await loadModelDefinition(a, 'other.yaml');
    expect(loaded.file).toBe(join(a, 'other.yaml'));
    expect(loaded.model.name).toBe('simple-http-server');
  });

  it('names the missing folder or file', async () => {
    await expect(loadModelDefinition(join(dir, 'nope'))).rejects.toMatchObject({ problems: [{ path: 'model_folder', message: expect.stringContaining('no such folder') }] });
    mkdirSync(join(dir, 'empty'));
    await expect(loadModelDefinition(join(dir, 'empty'))).rejects.toMatchObject({
      problems: [{ path: 'model_folder', message: expect.stringContaining('no model-definition.yaml or model-definition.yml') }],
    });
    await expect(loadModelDefinition(join(dir, 'empty'), 'x.yaml')).rejects.toMatchObject({ problems: [{ path: 'model_definition_path' }] });
  });

  it('parses the shipped examples', async () => {
    for (const folder of ['simple-http-server', 'sse-chat']) {
      const loaded = await loadModelDefinition(join(import.meta.dirname, '../../../config/examples', folder));
      expect(loaded.model.service.port).toBe(8000);
    }
  });
});
