import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('./child-upstream-main.mjs', import.meta.url));

export interface ChildRequest {
  got: string;
  url: string;
  bytes: number;
}

/** An upstream replica running as its own process (see child-upstream-main.mjs). */
export interface ChildUpstream {
  name: string;
  child: ChildProcess;
  port: number;
  url: string;
  /** Requests it fully received, as it reported them. */
  received: ChildRequest[];
  /** SIGKILL: the kernel closes its sockets; nothing is flushed or answered. */
  kill(): Promise<void>;
}

/** `port` 0 = a free one; `answerHang` makes /hang answer like any path (a replica that came back). */
export async function startChildUpstream(name: string, port = 0, opts: { answerHang?: boolean } = {}): Promise<ChildUpstream> {
  const child = spawn(process.execPath, [MAIN, name], {
    env: { PATH: process.env.PATH, PORT: String(port), ANSWER_HANG: opts.answerHang ? '1' : '0' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const received: ChildRequest[] = [];
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    void exited.then(() => reject(new Error(`child upstream ${name} exited before listening`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const event = JSON.parse(line) as { listening?: number } & ChildRequest;
      if (event.listening !== undefined) resolve(event.listening);
      else received.push(event);
    });
  });
  const bound = await listening;
  return {
    name,
    child,
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    received,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
