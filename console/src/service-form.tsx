import { useState } from 'preact/hooks';
import { type AdminApi, type ApiError, type AutoscalingInput, type CreateServiceBody, type PatchServiceBody, type Service, type ValidateBody } from './api.js';
import { formatEnv, parseEnv } from './format.js';
import { asApiError } from './hooks.js';
import { ErrorBanner, Field, Modal } from './ui.js';
import { ValidateDialog } from './validate-dialog.js';

/**
 * The Start Service dialog (and Modify, the same form with the service's values filled in):
 * the seed guide's service launcher. Errors the admin API names (ADM_INVALID details) are
 * shown next to their field; nothing is kept half-applied, the service changes only on success.
 */

interface FormState {
  name: string;
  isPublic: boolean;
  folder: string;
  destination: string;
  definitionPath: string;
  replicas: string;
  env: string;
  cpu: string;
  memory: string;
  autoscale: boolean;
  minReplicas: string;
  maxReplicas: string;
  targetInFlight: string;
  stableWindow: string;
  panicWindow: string;
  scaleDownDelay: string;
  scaleToZeroGrace: string;
}

const DEFAULT_DESTINATION = '/models';
const DEFAULT_DEFINITION = 'model-definition.yaml';

function initialState(service: Service | null): FormState {
  const auto = service?.autoscaling ?? null;
  return {
    name: service?.name ?? '',
    isPublic: service?.public ?? false,
    folder: service?.model_folder ?? '',
    destination: service?.model_mount_destination ?? DEFAULT_DESTINATION,
    definitionPath: service?.model_definition_path ?? DEFAULT_DEFINITION,
    replicas: String(service?.replicas ?? 1),
    env: formatEnv(service?.env),
    cpu: service?.resources?.cpu !== undefined ? String(service.resources.cpu) : '',
    memory: service?.resources?.memory !== undefined ? String(service.resources.memory) : '',
    autoscale: auto !== null,
    minReplicas: String(auto?.min_replicas ?? 1),
    maxReplicas: String(auto?.max_replicas ?? 4),
    targetInFlight: String(auto?.target_in_flight ?? 10),
    stableWindow: auto?.stable_window_s !== undefined ? String(auto.stable_window_s) : '',
    panicWindow: auto?.panic_window_s !== undefined ? String(auto.panic_window_s) : '',
    scaleDownDelay: auto?.scale_down_delay_s !== undefined ? String(auto.scale_down_delay_s) : '',
    scaleToZeroGrace: auto?.scale_to_zero_grace_s !== undefined ? String(auto.scale_to_zero_grace_s) : '',
  };
}

/** Server field path → form field (ADM_INVALID details name the JSON path). */
function fieldFor(path: string): keyof FormState | null {
  const [head, sub] = path.split('.');
  switch (head) {
    case 'name':
      return 'name';
    case 'public':
      return 'isPublic';
    case 'model_folder':
      return 'folder';
    case 'model_mount_destination':
      return 'destination';
    case 'model_definition_path':
      return 'definitionPath';
    case 'replicas':
      return 'replicas';
    case 'env':
      return 'env';
    case 'resources':
      return sub === 'memory' ? 'memory' : 'cpu';
    case 'autoscaling':
      return (
        (
          {
            min_replicas: 'minReplicas',
            max_replicas: 'maxReplicas',
            target_in_flight: 'targetInFlight',
            stable_window_s: 'stableWindow',
            panic_window_s: 'panicWindow',
            scale_down_delay_s: 'scaleDownDelay',
            scale_to_zero_grace_s: 'scaleToZeroGrace',
          } as Record<string, keyof FormState>
        )[sub ?? ''] ?? 'minReplicas'
      );
    default:
      return null;
  }
}

type Errors = Partial<Record<keyof FormState | 'general', string>>;

/** A number field's value: the number, or the text itself so the server names it as not a number. */
function num(text: string): number {
  return text.trim() === '' ? NaN : Number(text);
}

function buildParts(s: FormState, errors: Errors) {
  const { env, bad } = parseEnv(s.env);
  if (bad.length > 0) errors.env = `line ${bad.join(', ')}: write one KEY=VALUE per line`;
  const resources: { cpu?: number; memory?: string | number } = {};
  if (s.cpu.trim() !== '') resources.cpu = num(s.cpu);
  if (s.memory.trim() !== '') resources.memory = /^\d+$/.test(s.memory.trim()) ? Number(s.memory) : s.memory.trim();
  let autoscaling: AutoscalingInput | undefined;
  if (s.autoscale) {
    autoscaling = { min_replicas: num(s.minReplicas), max_replicas: num(s.maxReplicas), target_in_flight: num(s.targetInFlight) };
    if (s.stableWindow.trim() !== '') autoscaling.stable_window_s = num(s.stableWindow);
    if (s.panicWindow.trim() !== '') autoscaling.panic_window_s = num(s.panicWindow);
    if (s.scaleDownDelay.trim() !== '') autoscaling.scale_down_delay_s = num(s.scaleDownDelay);
    if (s.scaleToZeroGrace.trim() !== '') autoscaling.scale_to_zero_grace_s = num(s.scaleToZeroGrace);
  }
  return { env, resources: Object.keys(resources).length > 0 ? resources : undefined, autoscaling };
}

/** JSON has no NaN: a number field the user left unreadable is sent as its text for the server to name. */
function jsonSafe<T>(value: T, s: FormState): T {
  return JSON.parse(
    JSON.stringify(value, (key, v) => {
      if (typeof v === 'number' && Number.isNaN(v)) {
        const source: Record<string, string> = {
          replicas: s.replicas,
          cpu: s.cpu,
          min_replicas: s.minReplicas,
          max_replicas: s.maxReplicas,
          target_in_flight: s.targetInFlight,
          stable_window_s: s.stableWindow,
          panic_window_s: s.panicWindow,
          scale_down_delay_s: s.scaleDownDelay,
          scale_to_zero_grace_s: s.scaleToZeroGrace,
        };
        return source[key] ?? null;
      }
      return v;
    }),
  ) as T;
}

export function ServiceForm(props: { api: AdminApi; service: Service | null; onClose: () => void; onSaved: (service: Service) => void }) {
  const modify = props.service !== null;
  const [s, setState] = useState<FormState>(() => initialState(props.service));
  const [errors, setErrors] = useState<Errors>({});
  const [failure, setFailure] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const [validating, setValidating] = useState<ValidateBody | null>(null);

  const set = <K extends keyof FormState>(key: K, value: FormState[K]) => {
    setState((prev) => ({ ...prev, [key]: value }));
    setErrors((prev) => ({ ...prev, [key]: undefined }));
  };
  const text = (key: keyof FormState) => (e: Event) => set(key, (e.currentTarget as HTMLInputElement).value as never);

  const showServerErrors = (err: ApiError) => {
    const next: Errors = {};
    let unplaced = false;
    for (const d of err.details) {
      const field = fieldFor(d.field);
      if (field === null) unplaced = true;
      else next[field] = next[field] ? `${next[field]}; ${d.message}` : d.message;
    }
    setErrors(next);
    setFailure(err.details.length === 0 || unplaced ? err : null);
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    const local: Errors = {};
    const parts = buildParts(s, local);
    if (Object.keys(local).length > 0) {
      setErrors(local);
      return;
    }
    setBusy(true);
    setFailure(null);
    try {
      let saved: Service;
      if (modify) {
        const body: PatchServiceBody = { public: s.isPublic, env: parts.env, resources: parts.resources ?? null };
        // With autoscaling the controller owns the count: a fixed one is sent only without it.
        if (parts.autoscaling) body.autoscaling = parts.autoscaling;
        else {
          body.replicas = num(s.replicas);
          if (props.service?.autoscaling) body.autoscaling = null;
        }
        saved = await props.api.patchService(props.service!.name, jsonSafe(body, s));
      } else {
        const body: CreateServiceBody & { model_mount_destination?: string } = {
          name: s.name.trim(),
          model_folder: s.folder.trim(),
          model_definition_path: s.definitionPath.trim() || undefined,
          public: s.isPublic,
          env: parts.env,
          resources: parts.resources,
        };
        if (!parts.autoscaling) body.replicas = num(s.replicas);
        if (s.destination.trim() !== '' && s.destination.trim() !== DEFAULT_DESTINATION) body.model_mount_destination = s.destination.trim();
        if (parts.autoscaling) body.autoscaling = parts.autoscaling;
        saved = await props.api.createService(jsonSafe(body, s));
      }
      props.onSaved(saved);
    } catch (err) {
      showServerErrors(asApiError(err));
    } finally {
      setBusy(false);
    }
  };

  const validate = () => {
    const local: Errors = {};
    const parts = buildParts(s, local);
    if (!s.folder.trim()) local.folder = 'required';
    if (Object.keys(local).length > 0) {
      setErrors(local);
      return;
    }
    const body: ValidateBody & { model_mount_destination?: string } = {
      model_folder: s.folder.trim(),
      model_definition_path: s.definitionPath.trim() || undefined,
      env: parts.env,
      resources: parts.resources,
    };
    if (s.destination.trim() !== '' && s.destination.trim() !== DEFAULT_DESTINATION) body.model_mount_destination = s.destination.trim();
    setValidating(jsonSafe(body, s));
  };

  const numberInput = (key: keyof FormState, attrs: { min?: number; step?: string } = {}) => (ids: { id: string; describedBy: string | undefined; invalid: boolean }) => (
    <input
      id={ids.id}
      type="number"
      inputMode="numeric"
      min={attrs.min}
      step={attrs.step ?? '1'}
      value={s[key] as string}
      onInput={text(key)}
      aria-describedby={ids.describedBy}
      aria-invalid={ids.invalid}
    />
  );

  return (
    <Modal
      title={modify ? `Modify ${props.service!.name}` : 'Start Service'}
      onClose={props.onClose}
      wide
      footer={
        <>
          <button type="button" onClick={validate} class="secondary left" disabled={busy}>
            Validate
          </button>
          <button type="button" onClick={props.onClose}>
            Cancel
          </button>
          <button type="submit" form="service-form" class="primary" disabled={busy}>
            {modify ? 'Save' : 'Create'}
          </button>
        </>
      }
    >
      <form id="service-form" class="form" onSubmit={submit} noValidate>
        <ErrorBanner error={failure} prefix={modify ? 'Not saved' : 'Not created'} />
        <section class="form-section">
          <h3>Service</h3>
          <Field label="Service name" error={errors.name} hint={modify ? undefined : 'Also the endpoint name: a-z, 0-9 and "-".'}>
            {(ids) => (
              <input
                id={ids.id}
                value={s.name}
                onInput={text('name')}
                disabled={modify}
                required
                autoComplete="off"
                spellcheck={false}
                aria-describedby={ids.describedBy}
                aria-invalid={ids.invalid}
              />
            )}
          </Field>
          <Field label="Open To Public" error={errors.isPublic} inline hint="Callers need no token.">
            {(ids) => (
              <input
                id={ids.id}
                type="checkbox"
                checked={s.isPublic}
                onChange={(e) => set('isPublic', e.currentTarget.checked)}
                aria-describedby={ids.describedBy}
                aria-invalid={ids.invalid}
              />
            )}
          </Field>
          <Field label="Model Storage To Mount" error={errors.folder} hint="The folder on this machine that holds the model definition.">
            {(ids) => (
              <input
                id={ids.id}
                value={s.folder}
                onInput={text('folder')}
                disabled={modify}
                placeholder="/srv/models/my-model"
                spellcheck={false}
                aria-describedby={ids.describedBy}
                aria-invalid={ids.invalid}
              />
            )}
          </Field>
          <div class="row">
            <Field label="Model Destination For Model Folder" error={errors.destination}>
              {(ids) => (
                <input
                  id={ids.id}
                  value={s.destination}
                  onInput={text('destination')}
                  disabled={modify}
                  spellcheck={false}
                  aria-describedby={ids.describedBy}
                  aria-invalid={ids.invalid}
                />
              )}
            </Field>
            <Field label="Model Definition File Path" error={errors.definitionPath}>
              {(ids) => (
                <input
                  id={ids.id}
                  value={s.definitionPath}
                  onInput={text('definitionPath')}
                  disabled={modify}
                  spellcheck={false}
                  aria-describedby={ids.describedBy}
                  aria-invalid={ids.invalid}
                />
              )}
            </Field>
          </div>
          <Field label="Desired Routing Count" error={errors.replicas} hint={s.autoscale ? 'Autoscaling sets the count between its minimum and maximum.' : undefined}>
            {numberInput('replicas', { min: 1 })}
          </Field>
        </section>

        <section class="form-section">
          <h3>Environment and resources</h3>
          <Field label="Environment variables" error={errors.env} hint="One KEY=VALUE per line.">
            {(ids) => (
              <textarea id={ids.id} rows={3} value={s.env} onInput={text('env')} spellcheck={false} aria-describedby={ids.describedBy} aria-invalid={ids.invalid} />
            )}
          </Field>
          <div class="row">
            <Field label="CPU (cores)" error={errors.cpu}>
              {numberInput('cpu', { min: 0, step: 'any' })}
            </Field>
            <Field label="Memory" error={errors.memory} hint='e.g. "2g" or "512m"'>
              {(ids) => <input id={ids.id} value={s.memory} onInput={text('memory')} aria-describedby={ids.describedBy} aria-invalid={ids.invalid} />}
            </Field>
          </div>
        </section>

        <section class="form-section">
          <h3>Autoscaling</h3>
          <Field label="Autoscaling" inline hint="The controller sets the replica count from the requests in flight.">
            {(ids) => <input id={ids.id} type="checkbox" checked={s.autoscale} onChange={(e) => set('autoscale', e.currentTarget.checked)} aria-describedby={ids.describedBy} />}
          </Field>
          {s.autoscale && (
            <>
              <div class="row three">
                <Field label="Minimum replicas" error={errors.minReplicas} hint="0 lets an idle service scale to zero.">
                  {numberInput('minReplicas', { min: 0 })}
                </Field>
                <Field label="Maximum replicas" error={errors.maxReplicas}>
                  {numberInput('maxReplicas', { min: 1 })}
                </Field>
                <Field label="Target in-flight requests per replica" error={errors.targetInFlight}>
                  {numberInput('targetInFlight', { min: 1 })}
                </Field>
              </div>
              <div class="row four">
                <Field label="Stable window (s)" error={errors.stableWindow}>
                  {numberInput('stableWindow', { min: 1 })}
                </Field>
                <Field label="Panic window (s)" error={errors.panicWindow}>
                  {numberInput('panicWindow', { min: 1 })}
                </Field>
                <Field label="Scale-down delay (s)" error={errors.scaleDownDelay}>
                  {numberInput('scaleDownDelay', { min: 0 })}
                </Field>
                <Field label="Scale-to-zero grace (s)" error={errors.scaleToZeroGrace}>
                  {numberInput('scaleToZeroGrace', { min: 0 })}
                </Field>
              </div>
            </>
          )}
        </section>
      </form>
      {validating && <ValidateDialog api={props.api} body={validating} onClose={() => setValidating(null)} />}
    </Modal>
  );
}
