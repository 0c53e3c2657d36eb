import { loadSettings, SettingsError, type Settings } from '../config/settings.js';
import { readSavedSecret, SAVED_SECRETS, SecretFileError, type SavedSecretName } from '../store/secrets.js';
import { CliError, type CliIo } from './cli-io.js';

/** Settings and saved secrets as every CLI command reads them: any failure is one line for the user. */

export function settingsFrom(io: CliIo, configFile: string | undefined): Settings {
  try {
    return loadSettings({ env: io.env, configFile, ephemeral: true });
  } catch (err) {
    if (err instanceof SettingsError) throw new CliError(err.message);
    throw err;
  }
}

/** A secret the gateway generated and saved in DATA_DIR (read only; never created here). */
export function savedSecret(settings: Settings, name: SavedSecretName): string | undefined {
  if (!settings.DATA_DIR) return undefined;
  try {
    return readSavedSecret(settings.DATA_DIR, name) ?? undefined;
  } catch (err) {
    if (err instanceof SecretFileError) throw new CliError(err.message);
    throw err;
  }
}

/** `DATA_DIR/<file>` as the user should look for it. */
export function savedSecretHint(name: SavedSecretName): string {
  return `DATA_DIR/${SAVED_SECRETS[name].file}`;
}
