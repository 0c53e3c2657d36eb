import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AccessLog, type BatchWriter } from '../../../src/obs/access-log.js';
import { eventually } from '../../support/eventually.js';

const fields = (i: number) => ({ request_id: `id-${i}`, method: 'GET', path: '/v1/x', endpoint: 'e', route: undefined, status: 200, bytes: 64, duration_ms: 1.25, err_code: undefined });

describe('access log', () => {
  it('writes the request line in the pino shape, optional fields left out', async () => {
    const batches: string[] = [];
    const writer: BatchWriter = (b, done) => {
      batches.push(b.toString('latin1'));
      done(null, b.length);
    };
    const log = new AccessLog({ level: 'info', writer, flushIntervalMs: 5 });
    log.request('id-1', 'GET', '/v1/x', 'e', 'r1', 200, 64, 1.25, 0.5, undefined);
    log.request('a"b\\c', 'POST', '/ü\u2603', undefined, undefined, 502, 0, 12, -1, 'GW_UPSTREAM_UNAVAILABLE');
    log.request('id-3', 'GET', '/', 'e', 'r1', 200, 1, 1000.0004, 3.1, undefined);
    // Traffic control's fields: priority always, token counts when usage was read.
    log.request('id-4', 'POST', '/v1/chat/completions', 'e', 'r1', 200, 9, 2, 1, undefined, 7, 12, 5);
    log.request('id-5', 'POST', '/v1/chat/completions', 'e', 'r1', 200, 9, 2, 1, undefined, 5, -1, -1);
    // Method, endpoint and route reuse the last quoted form: a change of value is quoted afresh.
    log.request('id-6', 'GE"T', '/', 'e"é', 'r\\2', 200, 1, 1, 1, undefined);
    log.request('id-7', 'GET', '/', 'e', 'r1', 200, 1, 1, 1, undefined);
    await log.flush();
    const text = batches.join('');
    expect(/^[\x20-\x7e\n]*$/.test(text)).toBe(true);
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(Object.keys(lines[0])).toEqual(['level', 'time', 'pid', 'request_id', 'method', 'path', 'endpoint', 'route', 'status', 'bytes', 'duration_ms', 'ttfb_ms', 'msg']);
    expect(lines[0]).toMatchObject({ level: 'info', pid: process.pid, request_id: 'id-1', status: 200, bytes: 64, duration_ms: 1.25, ttfb_ms: 0.5, msg: 'request' });
    expect(lines[1]).toEqual({ level: 'info', time: lines[1].time, pid: process.pid, request_id: 'a"b\\c', method: 'POST', path: '/ü\u2603', status: 502, bytes: 0, duration_ms: 12, err_code: 'GW_UPSTREAM_UNAVAILABLE', msg: 'request' });
    expect(lines[2]).toMatchObject({ duration_ms: 1000, ttfb_ms: 3.1 });
    expect(Object.keys(lines[3]).slice(-4)).toEqual(['priority', 'prompt_tokens', 'completion_tokens', 'msg']);
    expect(lines[3]).toMatchObject({ priority: 7, prompt_tokens: 12, completion_tokens: 5 });
    expect(lines[4].priority).toBe(5);
    expect('prompt_tokens' in lines[4] || 'completion_tokens' in lines[4]).toBe(false);
    expect(lines[5]).toMatchObject({ method: 'GE"T', endpoint: 'e"é', route: 'r\\2' });
    expect(lines[6]).toMatchObject({ method: 'GET', endpoint: 'e', route: 'r1' });
  });

  it('writes other lines (WebSocket sessions) from a fields object, undefined fields left out and odd strings escaped', async () => {
    const batches: string[] = [];
    const writer: BatchWriter = (b, done) => {
      batches.push(b.toString('latin1'));
      done(null, b.length);
    };
    const log = new AccessLog({ level: 'info', writer, flushIntervalMs: 5 });
    log.info(fields(1), 'request');
    log.info({ request_id: 'a"b\\c', path: '/ü\n', status: 404, bytes: NaN, ttfb_ms: undefined }, 'request');
    await eventually(() => (batches.length > 0 ? true : null));
    const lines = batches.join('').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(Object.keys(lines[0])).toEqual(['level', 'time', 'pid', 'request_id', 'method', 'path', 'endpoint', 'status', 'bytes', 'duration_ms', 'msg']);
    expect(lines[0]).toMatchObject({ level: 'info', pid: process.pid, request_id: 'id-1', status: 200, duration_ms: 1.25, msg: 'request' });
    expect(Date.parse(lines[0].time)).toBeGreaterThan(0);
    expect(lines[1]).toMatchObject({ request_id: 'a"b\\c', path: '/ü\n', status: 404, bytes: null });
    expect('ttfb_ms' in lines[1]).toBe(false);
  });

  it('batches many lines into few writes, one in flight at a time', async () => {
    let writes = 0;
    let inFlight = 0;
    let maxInFlight = 0;
    let text = '';
    const writer: BatchWriter = (b, done) => {
      writes++;
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      setTimeout(() => {
        inFlight--;
        text += b.toString();
        done(null, b.length);
      }, 2);
    };
    const log = new AccessLog({ level: 'info', writer, flushBytes: 16 * 1024, flushIntervalMs: 5 });
    for (let i = 0; i < 5000; i++) log.request(`id-${i}`, 'GET', '/v1/x', 'e', 'r1', 200, 64, 1.5, 1, undefined);
    await log.flush();
    const lines = text.trimEnd().split('\n');
    expect(lines).toHaveLength(5000);
    expect(lines.map((l) => JSON.parse(l).request_id)).toEqual(Array.from({ length: 5000 }, (_, i) => `id-${i}`));
    expect(writes).toBeLessThan(100);
    expect(maxInFlight).toBe(1);
    expect(log.dropped).toBe(0);
  });

  it('keeps every line whole and in order across batch buffers, oversized lines and a slow write', async () => {
    // The writer reads each batch only when it completes: a batch buffer reused too early would show here.
    const seen: string[] = [];
    const writer: BatchWriter = (b, done) => {
      setTimeout(() => {
        seen.push(b.toString('latin1'));
        done(null, b.length);
      }, 3);
    };
    const log = new AccessLog({ level: 'info', writer, flushBytes: 4096, flushIntervalMs: 2 });
    const expected: string[] = [];
    for (let i = 0; i < 600; i++) {
      // Every 97th path is longer than a whole batch buffer.
      const path = `/p/${i}/${'x'.repeat(i % 97 === 0 ? 6000 : i % 50)}`;
      expected.push(path);
      log.request(`id-${i}`, 'POST', path, 'e', 'r', 200, i, 1, 0.5, undefined);
      if (i % 100 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await log.flush();
    const lines = seen.join('').trimEnd().split('\n').map((l) => JSON.parse(l) as { path: string; bytes: number });
    expect(lines.map((l) => l.path)).toEqual(expected);
    expect(lines.map((l) => l.bytes)).toEqual(expected.map((_, i) => i));
    expect(log.dropped).toBe(0);
  });

  it('writes what is buffered synchronously at exit, in order, behind the batch in flight', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-access-'));
    const file = join(dir, 'access.log');
    const fd = openSync(file, 'w');
    // The first 4 KiB batch goes to a write that never completes; the rest fills batch buffers behind it.
    let inFlight = '';
    const writer: BatchWriter = (b) => {
      inFlight = b.toString('latin1');
    };
    let written: string;
    try {
      const log = new AccessLog({ level: 'info', writer, fd, flushBytes: 4096, flushIntervalMs: 60_000 });
      for (let i = 0; i < 60; i++) log.request(`id-${i}`, 'GET', `/${'y'.repeat(200)}`, 'e', 'r', 200, i, 1, 0.5, undefined);
      log.flushSync();
      closeSync(fd);
      written = readFileSync(file, 'utf8');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const ids = (inFlight + written).trimEnd().split('\n').map((l) => (JSON.parse(l) as { request_id: string }).request_id);
    expect(inFlight.length).toBeGreaterThan(0);
    expect(ids).toEqual(Array.from({ length: 60 }, (_, i) => `id-${i}`));
  });

  it('drops and counts lines when the destination cannot keep up, without blocking the caller', async () => {
    let release: (() => void) | null = null;
    const writer: BatchWriter = (b, done) => {
      release = () => done(null, b.length);
    };
    const log = new AccessLog({ level: 'info', writer, flushBytes: 1024, maxPendingBytes: 64 * 1024 });
    const t0 = performance.now();
    for (let i = 0; i < 10_000; i++) log.request(`id-${i}`, 'GET', '/v1/x', 'e', 'r1', 200, 64, 1.5, 1, undefined);
    expect(performance.now() - t0).toBeLessThan(2000);
    // ~150 bytes a line: about 430 lines fit in 64 KiB, the rest is dropped and counted.
    expect(log.dropped).toBeGreaterThan(9000);
    expect(log.dropped).toBeLessThan(10_000);
    release!();
  });

  it('counts a lost batch when the destination fails, and keeps going', async () => {
    let fail = true;
    const seen: string[] = [];
    const writer: BatchWriter = (b, done) => {
      if (fail) return done(Object.assign(new Error('broken pipe'), { code: 'EPIPE' }), 0);
      seen.push(b.toString());
      done(null, b.length);
    };
    const log = new AccessLog({ level: 'info', writer, flushIntervalMs: 1 });
    log.info(fields(1), 'request');
    log.info(fields(2), 'request');
    await log.flush();
    expect(log.dropped).toBe(2);
    fail = false;
    log.info(fields(3), 'request');
    await log.flush();
    expect(seen.join('')).toContain('"id-3"');
  });

  it('is off above info, and writes a real file descriptor asynchronously', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mg-access-'));
    const file = join(dir, 'access.log');
    const fd = openSync(file, 'w');
    const off = new AccessLog({ level: 'warn', fd });
    expect(off.enabled).toBe(false);
    expect(off.isLevelEnabled('info')).toBe(false);
    off.info(fields(0), 'request');
    const on = new AccessLog({ level: 'info', fd, flushIntervalMs: 1 });
    for (let i = 1; i <= 3; i++) on.info(fields(i), 'request');
    await on.flush();
    closeSync(fd);
    const text = readFileSync(file, 'utf8');
    rmSync(dir, { recursive: true, force: true });
    const lines = text.trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.request_id)).toEqual(['id-1', 'id-2', 'id-3']);
  });
});
