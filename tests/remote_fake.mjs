// A fake OpenAI-compatible server for tests/cli_remote.sh: the awkward
// things real servers do, by model name.
//   think-tags  llama-server / vLLM without a reasoning parser: <think> in
//               content, CRLF lines, keep-alive comments, writes that split
//               lines and tags, usage at the end
//   needs-key   401 with a JSON error unless "Authorization: Bearer sk-test"
//   broken      500 with a plain-text body
//   cutoff      one delta, then the connection drops
// usage: node tests/remote_fake.mjs PORTFILE   (listens on 127.0.0.1:0 and
// writes the port to PORTFILE; logs each request's JSON body to stderr)
import http from 'node:http';
import fs from 'node:fs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const models = ['think-tags', 'needs-key', 'broken', 'cutoff'];

function chunk(delta, finish = null) {
    return 'data: ' + JSON.stringify({
        id: 'x', object: 'chat.completion.chunk', created: 0, model: 'm',
        choices: [{ index: 0, delta, finish_reason: finish }],
    }) + '\r\n\r\n';
}

async function stream(res, model) {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
    if (model === 'cutoff') {
        res.write(chunk({ content: 'Half an ans' }));
        await sleep(50);
        res.socket.destroy();
        return;
    }
    // the whole stream, then written in uneven pieces
    const text = ': keep-alive\r\n\r\n' + chunk({ role: 'assistant', content: '' }) +
        chunk({ content: '<think>' }) + chunk({ content: '\nI add' }) +
        ': ping\r\n\r\n' + chunk({ content: ' two and three.\n' }) +
        chunk({ content: '</think>' }) + chunk({ content: '\n\n' }) +
        chunk({ content: 'Five' }) + chunk({ content: '.' }) + chunk({}, 'stop') +
        'data: ' + JSON.stringify({ choices: [], usage: {
            prompt_tokens: 11, completion_tokens: 8, total_tokens: 19 } }) + '\r\n\r\n' +
        'data: [DONE]\r\n\r\n';
    for (let i = 0; i < text.length;) {
        const n = 1 + ((i * 7) % 23);
        res.write(text.slice(i, i + n));
        i += n;
        await sleep(2);
    }
    res.end();
}

const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
        if (req.method === 'GET' && req.url === '/v1/models') {
            res.writeHead(200, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ object: 'list',
                data: models.map((id) => ({ id, object: 'model', owned_by: 'fake' })) }));
            return;
        }
        if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
            res.writeHead(404, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ error: { message: 'no such path ' + req.url } }));
            return;
        }
        process.stderr.write(body + '\n');
        let j;
        try { j = JSON.parse(body); } catch (e) {
            res.writeHead(400); res.end('bad json'); return;
        }
        if (j.model === 'needs-key' && req.headers.authorization !== 'Bearer sk-test') {
            res.writeHead(401, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ error: { message: 'Invalid API key', type: 'auth' } }));
            return;
        }
        if (j.model === 'broken') {
            res.writeHead(500, { 'Content-Type': 'text/plain' });
            res.end('upstream exploded\nTraceback ...\n');
            return;
        }
        stream(res, j.model);
    });
});
server.listen(0, '127.0.0.1', () => {
    fs.writeFileSync(process.argv[2], String(server.address().port));
});
