import { promises as fsp, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../obs/logger.js';
import { acquireDirLock, ensureDataDir, FILE_MODE, writeFileAtomic, type DirLock } from './durable-file.js';
import { MemoryState, stateOpSchema, type StateOp } from './memory-state.js';

/**
 * Durability of the embedded store: a snapshot (`state.json`, replaced atomically) plus an
 * append-only journal (`journal.ndjson`, one op per line, fdatasync'd before the write is
 * acknowledged). Concurrent writes share one fdatasync (group commit). When the journal grows
 * past `compactBytes`, the whole state is written as a new snapshot and the journal emptied.
 * See docs/embedded-store.md for the measurements behind this choice.
 *
 * Crash safety: each journal line carries a sequence number and the snapshot records the last
 * one it contains, so a crash between "snapshot renamed" and "journal emptied" replays nothing
 * twice; ops are absolute values anyway. A torn last line (a crash mid-append, no newline) is
 * the only damage that is repaired; anything else stops start-up untouched.
 */

export const STATE_FILE = 'state.json';
export const JOURNAL_FILE = 'journal.ndjson';
const DEFAULT_COMPACT_BYTES = 4 * 1024 * 1024;

export class StoreStateError extends Error {
  constructor(file: string, problem: string, hint: string) {
    super(
      `embedded store: ${file} is not a valid state file: ${problem}. The file was left untouched. ${hint}`,
    );
    this.name = 'StoreStateError';
  }
}

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
}

export interface JournalOptions {
  dir: string;
  logger: Logger;
  compactBytes?: number;
}

export class Journal {
  readonly dir: string;
  readonly #logger: Logger;
  readonly #compactBytes: number;
  readonly #stateFile: string;
  readonly #journalFile: string;
  #lock: DirLock | null = null;
  #handle: fsp.FileHandle | null = null;
  #seq = 0;
  #journalBytes = 0;
  #pending: string[] = [];
  #waiters: Waiter[] = [];
  #flushing: Promise<void> | null = null;
  #failed: Error | null = null;
  #state: MemoryState | null = null;

  constructor(opts: JournalOptions) {
    this.dir = opts.dir;
    this.#logger = opts.logger;
    this.#compactBytes = opts.compactBytes ?? DEFAULT_COMPACT_BYTES;
    this.#stateFile = join(opts.dir, STATE_FILE);
    this.#journalFile = join(opts.dir, JOURNAL_FILE);
  }

  get failure(): Error | null {
    return this.#failed;
  }

  /** Takes the lock and loads snapshot + journal into `state`. */
  async open(state: MemoryState): Promise<void> {
    ensureDataDir(this.dir, this.#logger);
    this.#lock = acquireDirLock(this.dir, this.#logger);
    try {
      this.#load(state);
      this.#handle = await fsp.open(this.#journalFile, 'a', FILE_MODE);
      this.#journalBytes = (await this.#handle.stat()).size;
      this.#state = state;
    } catch (err) {
      this.#lock.release();
      this.#lock = null;
      throw err;
    }
  }

  #load(state: MemoryState): void {
    const moveAside = (file: string) =>
      `To start anyway, stop modelgate and move it aside (mv ${file} ${file}.broken); ` +
      `state it held is then lost unless you restore it from a backup.`;
    let snapshotSeq = 0;
    let text: string | null = null;
    try {
      text = readFileSync(this.#stateFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new StoreStateError(this.#stateFile, `cannot read (${(err as NodeJS.ErrnoException).code})`, moveAside(this.#stateFile));
    }
    if (text !== null) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (err) {
        throw new StoreStateError(this.#stateFile, `not JSON (${(err as Error).message})`, moveAside(this.#stateFile));
      }
      const loaded = state.loadSnapshot(value);
      if (!loaded.ok) throw new StoreStateError(this.#stateFile, loaded.error, moveAside(this.#stateFile));
      snapshotSeq = loaded.seq;
    }
    this.#seq = snapshotSeq;

    let journal: Buffer;
    try {
      journal = readFileSync(this.#journalFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new StoreStateError(this.#journalFile, `cannot read (${(err as NodeJS.ErrnoException).code})`, moveAside(this.#journalFile));
    }
    let offset = 0;
    let lineNo = 0;
    while (offset < journal.length) {
      const nl = journal.indexOf(0x0a, offset);
      if (nl < 0) {
        // Written by a process that died mid-append: that write was never acknowledged.
        this.#logger.warn({ file: this.#journalFile, bytes: journal.length - offset }, 'truncating a torn last journal line left by a crash');
        truncateSync(this.#journalFile, offset);
        break;
      }
      lineNo++;
      const line = journal.subarray(offset, nl).toString('utf8');
      offset = nl + 1;
      if (line.trim() === '') continue;
      const where = `line ${lineNo}`;
      let value: { seq?: unknown };
      try {
        value = JSON.parse(line) as { seq?: unknown };
      } catch (err) {
        throw new StoreStateError(this.#journalFile, `${where}: not JSON (${(err as Error).message})`, moveAside(this.#journalFile));
      }
      const seq = value?.seq;
      if (typeof seq !== 'number' || !Number.isInteger(seq)) throw new StoreStateError(this.#journalFile, `${where}: missing seq`, moveAside(this.#journalFile));
      const op = stateOpSchema.safeParse(value);
      if (!op.success) {
        const problem = op.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
        throw new StoreStateError(this.#journalFile, `${where}: ${problem}`, moveAside(this.#journalFile));
      }
      // Already contained in the snapshot (a crash between snapshot rename and journal reset).
      if (seq <= snapshotSeq) continue;
      if (seq <= this.#seq) throw new StoreStateError(this.#journalFile, `${where}: sequence ${seq} does not follow ${this.#seq}`, moveAside(this.#journalFile));
      state.apply(op.data);
      this.#seq = seq;
    }
  }

  /** Records an op already applied in memory; resolves once it is on disk. */
  append(op: StateOp): Promise<void> {
    if (this.#failed) return Promise.reject(this.#failed);
    this.#seq++;
    this.#pending.push(`${JSON.stringify({ seq: this.#seq, ...op })}\n`);
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (!this.#flushing) this.#flushing = this.#flushLoop().finally(() => (this.#flushing = null));
    return done;
  }

  async #flushLoop(): Promise<void> {
    while (this.#pending.length > 0 && !this.#failed) {
      const lines = this.#pending;
      const waiters = this.#waiters;
      this.#pending = [];
      this.#waiters = [];
      try {
        const handle = this.#handle;
        if (!handle) throw new Error('journal is closed');
        const buf = Buffer.from(lines.join(''), 'utf8');
        await handle.write(buf);
        await handle.datasync();
        this.#journalBytes += buf.length;
        if (this.#journalBytes >= this.#compactBytes) await this.#compact();
      } catch (err) {
        this.#fail(err as Error, waiters);
        return;
      }
      for (const w of waiters) w.resolve();
    }
  }

  #fail(err: Error, waiters: Waiter[]): void {
    // The in-memory state is now ahead of the disk; refusing further writes keeps the disk a
    // consistent prefix of acknowledged history.
    this.#failed = new Error(`cannot write the embedded store in ${this.dir}: ${(err as NodeJS.ErrnoException).code ?? err.message}`, { cause: err });
    this.#logger.error({ err }, 'embedded store write failed; refusing further writes');
    for (const w of [...waiters, ...this.#waiters]) w.reject(this.#failed);
    this.#waiters = [];
    this.#pending = [];
  }

  /** Snapshot of everything applied so far, then an empty journal. */
  async #compact(): Promise<void> {
    const state = this.#state;
    const handle = this.#handle;
    if (!state || !handle) return;
    // Taken synchronously: it holds exactly the ops numbered up to #seq, including any still
    // pending (those lines are then skipped at replay as already contained).
    const snapshot = state.toSnapshot(this.#seq, Date.now() / 1000);
    await writeFileAtomic(this.#stateFile, JSON.stringify(snapshot));
    await handle.truncate(0);
    await handle.datasync();
    this.#journalBytes = 0;
  }

  async close(): Promise<void> {
    while (this.#flushing) await this.#flushing;
    if (this.#handle && !this.#failed && this.#journalBytes > 0) {
      // A clean stop leaves one file, so the next start does not replay.
      await this.#compact().catch((err: unknown) => this.#logger.warn({ err }, 'compaction at close failed; the journal is kept'));
    }
    await this.#handle?.close();
    this.#handle = null;
    this.#lock?.release();
    this.#lock = null;
  }
}
