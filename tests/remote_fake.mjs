// A fake OpenAI-compatible server for tests/cli_remote.sh: the awkward
// things real servers do, by model name.
//   think-tags  llama-server / vLLM without a reasoning parser: <think> in
//               content, CRLF lines, keep-alive comments, writes that split
//               lines and tags, usage at the end
//   needs-key   401 with a JSON error unless "Authorization: Bearer sk-test"
//   broken      500 with a plain-text body
//   cutoff      one delta, then the connection drops
//   lone-close  vLLM / SGLang without a reasoning parser serving R1: the
//               reasoning as plain content ended by a lone </think> (the
//               <think> was in the prompt), usage with 0 reasoning tokens
//   plain       a model that does not reason: content only, no tags
// usage: node tests/remote_fake.mjs PORTFILE   (listens on 127.0.0.1:0 and
// writes the port to PORTFILE; logs each request's JSON body to stderr)
import http from 'node:http';
import fs from 'node:fs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const models = ['think-tags', 'needs-key', 'broken', 'cutoff', 'lone-close', 'plain'];

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
    if (model === 'lone-close' || model === 'plain') {
        const parts = model === 'plain' ? ['Hello', ' there.']
            : ['Okay, so I add', ' two and three.\n', '</think>', '\n\n', 'Five', '.'];
        for (const p of parts) {
            res.write(chunk({ content: p }));
            await sleep(5);
        }
        res.write(chunk({}, 'stop'));
        res.write('data: ' + JSON.stringify({ choices: [], usage: {
            prompt_tokens: 11, completion_tokens: parts.length, total_tokens: 11 + parts.length,
            completion_tokens_details: { reasoning_tokens: 0 } } }) + '\n\n');
        res.end('data: [DONE]\n\n');
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
