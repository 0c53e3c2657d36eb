// A real upstream in its own process, so a test can kill it with SIGKILL mid-request (what a
// crashing replica looks like). It prints one JSON line per event on stdout:
//   {"listening": port}            once, at start
//   {"got": method, "url": url, "bytes": n}   each request, once its whole body was read
// Paths: /hang reads the body and never answers (unless ANSWER_HANG=1: a restarted replica); /slow?ms=N answers after N ms; anything else
// answers at once with `{name}:{body}`. PORT=n listens on that port (a restarted replica).
import { createServer } from 'node:http';

const name = process.argv[2] ?? 'child';
const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString();
    process.stdout.write(JSON.stringify({ got: req.method, url: req.url, bytes: Buffer.byteLength(body) }) + '\n');
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/hang' && process.env.ANSWER_HANG !== '1') return;
    const reply = () => {
      res.setHeader('x-replica', name);
      res.end(`${name}:${body}`);
    };
    if (url.pathname === '/slow') setTimeout(reply, Number(url.searchParams.get('ms') ?? '100'));
    else reply();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ listening: server.address().port }) + '\n');
});
