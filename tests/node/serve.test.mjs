// ponder serve with the official openai client (tests/cli_serve.sh starts the
// servers and sets the environment):
//   SERVE_URL    the demo model, --ctx 2048, --db SERVE_DB
//   KEY_URL      the demo model, --ctx 2048, --api-key-file (KEY_VALUE), --queue 0
//   LOADING_URL  a server whose model never finishes loading (a FIFO)
//   PONDER       the binary, to read the store back with `ponder history export`
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';

const { SERVE_URL, SERVE_DB, PONDER, KEY_URL, KEY_VALUE, LOADING_URL } = process.env;
const client = new OpenAI({ baseURL: `${SERVE_URL}/v1`, apiKey: 'unused', maxRetries: 0 });
const Q = 'Calculate 1 + 31.';
const user = (content) => [{ role: 'user', content }];
// a prompt the demo model answers with a very long reasoning at --ctx 2048
const LONG = `Calculate ${'1'.repeat(60)} + ${'2'.repeat(60)}.`;

function storedReply(conv) {
    assert.ok(conv, 'the response names its conversation (X-Ponder-Conversation)');
    const out = execFileSync(PONDER, ['history', 'export', String(conv), '--format', 'json',
        '--db', SERVE_DB], { encoding: 'utf8' });
    const c = JSON.parse(out);
    return c.messages[c.messages.length - 1];
}

function assertUsageMatchesRun(usage, run) {
    assert.equal(usage.completion_tokens, run.reasoning_tokens + run.answer_tokens);
    assert.equal(usage.completion_tokens_details.reasoning_tokens, run.reasoning_tokens);
    assert.equal(usage.prompt_tokens - usage.prompt_tokens_details.cached_tokens,
        run.prompt_tokens);
    assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
}

async function expectStatus(promise, status) {
    try {
        await promise;
    } catch (e) {
        assert.equal(e.status, status, `expected ${status}, got ${e.status}: ${e.message}`);
        assert.ok(e.error?.message, 'the error body has a message');
        assert.ok(e.error?.type, 'the error body has a type');
        return e;
    }
    assert.fail(`expected HTTP ${status}, the request succeeded`);
}

async function rawJson(url, init, status) {
    const r = await fetch(url, init);
    assert.equal(r.status, status, `${init?.method ?? 'GET'} ${url}`);
    const body = await r.json();
    assert.ok(body.error?.message && body.error?.type, 'an OpenAI-style error body');
    return { r, body };
}

test('models lists the loaded model', async () => {
    const list = await client.models.list();
    assert.deepEqual(list.data.map((m) => m.id), ['ponder-demo']);
});

test('models and models/ID give the context (vLLM max_model_len, context_length)', async () => {
    const list = await client.models.list();
    assert.equal(list.data[0].max_model_len, 2048);
    assert.equal(list.data[0].context_length, 2048);
    const one = await client.models.retrieve('ponder-demo');
    assert.equal(one.id, 'ponder-demo');
    assert.equal(one.max_model_len, 2048);
    assert.equal(one.context_length, 2048);
});

test('non-streaming chat: reasoning apart from the answer, usage equal to the stored run',
    async () => {
        const { data, response } = await client.chat.completions.create({
            model: 'ponder-demo', messages: user(Q), temperature: 0, max_tokens: 140,
        }).withResponse();
        const m = data.choices[0].message;
        assert.equal(data.object, 'chat.completion');
        assert.equal(m.content, '1 + 31 = 32');
        assert.match(m.reasoning_content, /Add the digits/);
        assert.ok(!/<\/?think>/.test(m.content + m.reasoning_content), 'no think tags');
        assert.equal(data.choices[0].finish_reason, 'stop');
        const r = storedReply(response.headers.get('x-ponder-conversation'));
        assert.equal(r.status, 'complete');
        assert.equal(r.run.driver, 'api');
        assert.equal(r.run.stop_reason, 'end');
        assert.equal(r.answer, m.content);
        assert.equal(r.reasoning, m.reasoning_content);
        assertUsageMatchesRun(data.usage, r.run);
    });

test('streaming chat: reasoning_content deltas, then content deltas, usage, [DONE]', async () => {
    const { data: stream, response } = await client.chat.completions.create({
        messages: user(Q), temperature: 0, max_tokens: 140, stream: true,
        stream_options: { include_usage: true },
    }).withResponse();
    let reasoning = '', content = '', order = '', usage = null, finish = null, chunks = 0;
    for await (const c of stream) {
        chunks++;
        if (c.usage) usage = c.usage;
        const ch = c.choices[0];
        if (!ch) continue;
        if (ch.finish_reason) finish = ch.finish_reason;
        if (ch.delta?.reasoning_content) {
            reasoning += ch.delta.reasoning_content;
            if (!order.endsWith('r')) order += 'r';
        }
        if (ch.delta?.content) {
            content += ch.delta.content;
            if (!order.endsWith('c')) order += 'c';
        }
    }
    assert.equal(order, 'rc', 'all reasoning first, then the answer');
    assert.ok(chunks > 10, `streamed in pieces (${chunks} chunks)`);
    assert.equal(content, '1 + 31 = 32');
    assert.match(reasoning, /Add the digits/);
    assert.equal(finish, 'stop');
    assert.ok(usage, 'a usage chunk');
    const r = storedReply(response.headers.get('x-ponder-conversation'));
    assert.equal(r.answer, content);
    assert.equal(r.reasoning, reasoning);
    assertUsageMatchesRun(usage, r.run);
});

test('completions: a raw prompt, streamed and not', async () => {
    const c = await client.completions.create({
        model: 'ponder-demo', prompt: 'Calculate 2 + 2.', max_tokens: 12, temperature: 0,
    });
    assert.equal(c.object, 'text_completion');
    assert.equal(typeof c.choices[0].text, 'string');
    assert.ok(c.usage.completion_tokens >= 1 && c.usage.completion_tokens <= 12);
    const s = await client.completions.create({
        prompt: 'Calculate 2 + 2.', max_tokens: 12, temperature: 0, stream: true,
    });
    let n = 0;
    for await (const ch of s) if (ch.choices[0]) n++;
    assert.ok(n >= 2);
});

test('stop sequences cut the answer (both modes) and end the generation', async () => {
    const { data, response } = await client.chat.completions.create({
        messages: user(Q), temperature: 0, stop: ['=', 'never'],
    }).withResponse();
    assert.equal(data.choices[0].message.content, '1 + 31 ');
    assert.equal(data.choices[0].finish_reason, 'stop');
    assert.equal(storedReply(response.headers.get('x-ponder-conversation')).run.stop_reason,
        'stop');
    const s = await client.chat.completions.create({
        messages: user(Q), temperature: 0, stop: ' = 3', stream: true,
    });
    let content = '';
    for await (const c of s) content += c.choices[0]?.delta?.content ?? '';
    assert.equal(content, '1 + 31');
});

test('seed: the same seed gives the same reply', async () => {
    // another prompt first, so both replies are computed from the same cached
    // prefix (a batch of prompt tokens and one token may round differently)
    const ask = async () => {
        await client.chat.completions.create({ messages: user('Multiply 5 by 3.'),
            max_tokens: 1 });
        return client.chat.completions.create({
            messages: user('Multiply 4 by 42.'), temperature: 1.0, seed: 1234, max_tokens: 60,
        });
    };
    const a = await ask(), b = await ask();
    assert.equal(a.choices[0].message.reasoning_content, b.choices[0].message.reasoning_content);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
});

test('think: "off" answers without reasoning; think_budget is recorded', async () => {
    const off = await client.chat.completions.create({
        messages: user(Q), temperature: 0, max_tokens: 40, think: 'off',
    });
    assert.equal(off.choices[0].message.reasoning_content, '');
    assert.equal(off.usage.completion_tokens_details.reasoning_tokens, 0);
    const { response } = await client.chat.completions.create({
        messages: user(Q), temperature: 0, max_tokens: 80, think_budget: 8, think_mode: 'hard',
    }).withResponse();
    const r = storedReply(response.headers.get('x-ponder-conversation'));
    assert.equal(r.run.think_budget, 8);
    assert.ok(r.run.reasoning_tokens <= 8 + 2, `hard budget: ${r.run.reasoning_tokens}`);
});

test('400: malformed JSON, wrong fields', async () => {
    const url = `${SERVE_URL}/v1/chat/completions`;
    const headers = { 'Content-Type': 'application/json' };
    await rawJson(url, { method: 'POST', headers, body: '{"messages": [' }, 400);
    await rawJson(url, { method: 'POST', headers, body: '[1, 2]' }, 400);
    await rawJson(url, { method: 'POST', headers, body: '{"messages": "hi"}' }, 400);
    const e = await expectStatus(client.chat.completions.create({
        messages: user(Q), temperature: 7,
    }), 400);
    assert.equal(e.param, 'temperature');
    await expectStatus(client.chat.completions.create({ messages: user(Q), max_tokens: 1e6 }),
        400);
    await expectStatus(client.chat.completions.create({ messages: [{ role: 'tool',
        content: 'x' }] }), 400);
    await expectStatus(client.chat.completions.create({ messages: user(Q), n: 3 }), 400);
});

test('404: unknown model or path; 405: wrong method; 413: body too large', async () => {
    const e = await expectStatus(client.chat.completions.create({
        model: 'no-such-model', messages: user(Q),
    }), 404);
    assert.equal(e.code, 'model_not_found');
    await rawJson(`${SERVE_URL}/v1/nothing`, {}, 404);
    const { r } = await rawJson(`${SERVE_URL}/v1/chat/completions`, {}, 405);
    assert.equal(r.headers.get('allow'), 'POST');
    await rawJson(`${SERVE_URL}/v1/models`, { method: 'DELETE' }, 405);
    await expectStatus(client.chat.completions.create({
        messages: user('x'.repeat(2 * 1024 * 1024)),
    }), 413);
});

test('401 without the key or with a wrong one; the key works', async () => {
    const none = new OpenAI({ baseURL: `${KEY_URL}/v1`, apiKey: '', maxRetries: 0 });
    const wrong = new OpenAI({ baseURL: `${KEY_URL}/v1`, apiKey: `${KEY_VALUE}x`,
        maxRetries: 0 });
    const right = new OpenAI({ baseURL: `${KEY_URL}/v1`, apiKey: KEY_VALUE, maxRetries: 0 });
    await expectStatus(none.models.list(), 401);
    await expectStatus(wrong.chat.completions.create({ messages: user(Q) }), 401);
    const list = await right.models.list();
    assert.equal(list.data[0].id, 'ponder-demo');
});

test('429 when the queue is full (--queue 0: one at a time)', async () => {
    const right = new OpenAI({ baseURL: `${KEY_URL}/v1`, apiKey: KEY_VALUE, maxRetries: 0 });
    const long = await right.chat.completions.create({
        messages: user(LONG), temperature: 0, max_tokens: 1800, stream: true,
    });
    const it = long[Symbol.asyncIterator]();
    await it.next();   // it is running
    await expectStatus(right.chat.completions.create({ messages: user(Q) }), 429);
    long.controller.abort();
});

test('503 while the model loads', async () => {
    const loading = new OpenAI({ baseURL: `${LOADING_URL}/v1`, apiKey: 'x', maxRetries: 0 });
    await expectStatus(loading.chat.completions.create({ messages: user(Q) }), 503);
    const r = await fetch(`${LOADING_URL}/health`);
    assert.equal(r.status, 503);
    assert.equal((await r.json()).status, 'loading');
    // the context is not known until the model has loaded
    const list = await loading.models.list();
    assert.equal(list.data[0].max_model_len, undefined);
    assert.equal(list.data[0].context_length, undefined);
});

test('a client that disconnects mid-stream stops its generation', async () => {
    const { data: stream, response } = await client.chat.completions.create({
        messages: user(LONG), temperature: 0, max_tokens: 1800, stream: true,
    }).withResponse();
    const conv = response.headers.get('x-ponder-conversation');
    let n = 0;
    try {
        for await (const c of stream) {
            if (c.choices[0]?.delta?.reasoning_content && ++n === 5) stream.controller.abort();
        }
    } catch (e) {
        assert.equal(e.name, 'APIUserAbortError');
    }
    let r;
    for (let i = 0; i < 100; i++) {
        r = storedReply(conv);
        if (r.status !== 'streaming') break;
        await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(r.status, 'interrupted');
    assert.equal(r.run.stop_reason, 'interrupted');
    assert.ok(r.run.reasoning_tokens < 1800, `stopped after ${r.run.reasoning_tokens} tokens`);
    const h = await (await fetch(`${SERVE_URL}/health`)).json();
    assert.equal(h.status, 'ok');
    assert.equal(h.running, 0);
});

test('a non-streaming client that disconnects stops its generation too', async () => {
    const ctl = new AbortController();
    const req = client.chat.completions.create({
        messages: user(LONG), temperature: 0, max_tokens: 1800,
    }, { signal: ctl.signal });
    let running = 0;
    for (let i = 0; i < 250 && !running; i++) {
        await new Promise((res) => setTimeout(res, 20));
        running = (await (await fetch(`${SERVE_URL}/health`)).json()).running;
    }
    assert.equal(running, 1, 'the generation started');
    ctl.abort();
    await assert.rejects(req);
    const t0 = Date.now();
    while ((await (await fetch(`${SERVE_URL}/health`)).json()).running) {
        assert.ok(Date.now() - t0 < 3000, 'the generation still runs 3 s after the client left');
        await new Promise((res) => setTimeout(res, 50));
    }
    const list = execFileSync(PONDER, ['history', 'list', '--limit', '1', '--db', SERVE_DB],
        { encoding: 'utf8' });
    const conv = list.split('\n')[1].trim().split(/\s+/)[0];
    const r = storedReply(conv);
    assert.equal(r.status, 'interrupted');
    assert.ok(r.run.reasoning_tokens < 1800);
});
