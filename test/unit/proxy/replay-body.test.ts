import { PassThrough, type Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ReplayBody } from '../../../src/proxy/replay-body.js';

function readAll(stream: Readable): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    stream.on('data', (c: Buffer) => (text += c.toString()));
    stream.on('end', () => resolve(text));
    stream.on('error', reject);
  });
}

describe('ReplayBody', () => {
  it('streams the body through and gives the whole of it again to a second try', async () => {
    const source = new PassThrough();
    const body = new ReplayBody(source, 1024);
    const first = body.attempt()!;
    const firstText = readAll(first);
    source.write('hello ');
    source.end('world');
    expect(await firstText).toBe('hello world');
    expect(await readAll(body.attempt()!)).toBe('hello world');
  });

  it('a try that failed half-way: the next one gets what was kept, then the rest as it arrives', async () => {
    const source = new PassThrough();
    const body = new ReplayBody(source, 1024);
    const first = body.attempt()!;
    const seen: string[] = [];
    first.on('data', (c: Buffer) => seen.push(c.toString()));
    source.write('part1,');
    await new Promise((r) => setImmediate(r));
    expect(seen).toEqual(['part1,']);
    // undici destroys the failed try's stream: the client's request must live on.
    first.destroy(new Error('upstream reset'));
    expect(source.destroyed).toBe(false);
    const second = readAll(body.attempt()!);
    source.end('part2');
    expect(await second).toBe('part1,part2');
  });

  it('past the limit the body is not replayable after a first try', async () => {
    const source = new PassThrough();
    const body = new ReplayBody(source, 8);
    const first = body.attempt()!;
    const text = readAll(first);
    source.end('more than eight bytes');
    expect(await text).toBe('more than eight bytes');
    expect(body.replayable).toBe(false);
    expect(body.attempt()).toBeNull();
  });

  it('a source error reaches the try reading it', async () => {
    const source = new PassThrough();
    const body = new ReplayBody(source, 1024);
    const read = readAll(body.attempt()!);
    source.destroy(new Error('client went away'));
    await expect(read).rejects.toThrow('client went away');
  });
});
