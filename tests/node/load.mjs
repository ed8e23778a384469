// A bounded load test of ponder serve (run by tests/cli_serve.sh): 32
// concurrent streaming clients, 200 requests in all.  Every request must be
// answered or refused with 429; the server must stay up with its RSS steady
// (growth after the warm-up at most RSS_BOUND_KB); every answered request
// must be stored as a run.  Environment: SERVE_URL, SERVER_PID, PONDER,
// SERVE_DB.  Prints one summary line; exits 1 on any failure.
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';

const { SERVE_URL, SERVER_PID, PONDER, SERVE_DB } = process.env;
const CLIENTS = 32, TOTAL = 200, WARMUP = 40;
const RSS_BOUND_KB = 8 * 1024;
const client = new OpenAI({ baseURL: `${SERVE_URL}/v1`, apiKey: 'unused', maxRetries: 0,
    timeout: 60000 });
const questions = ['Calculate 1 + 31.', 'Multiply 4 by 42.', 'Which is larger, 2.3 or 2.11?',
    'What is 7 - 5?'];

function rssKb() {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${SERVER_PID}/status`, 'utf8'));
    return Number(m[1]);
}

function storedRuns() {
    const out = execFileSync(PONDER, ['stats', '--db', SERVE_DB], { encoding: 'utf8' });
    let n = 0;
    for (const line of out.split('\n').slice(1)) {
        const f = line.trim().split(/\s+/);
        if (f.length >= 7) n += Number(f[3]);
    }
    return n;
}

let issued = 0, answered = 0, refused = 0, tokens = 0, rssWarm = 0, rssMax = 0;
const failures = [];

async function one(i) {
    try {
        const s = await client.chat.completions.create({
            messages: [{ role: 'user', content: questions[i % questions.length] }],
            max_tokens: 24, stream: true, stream_options: { include_usage: true },
        });
        let usage = null;
        for await (const c of s) if (c.usage) usage = c.usage;
        if (!usage) throw new Error('no usage chunk');
        tokens += usage.completion_tokens;
        answered++;
    } catch (e) {
        if (e.status === 429) refused++;
        else failures.push(`request ${i}: ${e.status ?? ''} ${e.message}`);
    }
    const rss = rssKb();
    if (answered + refused === WARMUP) rssWarm = rss;
    rssMax = Math.max(rssMax, rss);
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// A refused client waits a little before its next request, as a polite
// client would, so the queue is kept full and most requests are answered.
async function worker() {
    while (issued < TOTAL) {
        const before = refused;
        await one(issued++);
        if (refused > before) await sleep(300 + Math.random() * 300);
    }
}

const t0 = Date.now();
const rss0 = rssKb();
await Promise.all(Array.from({ length: CLIENTS }, worker));
const ms = Date.now() - t0;
const rssEnd = rssKb();
const runs = storedRuns();
if (answered + refused !== TOTAL) failures.push(`${answered + refused} of ${TOTAL} finished`);
if (answered === 0) failures.push('nothing was answered');
if (runs !== answered) failures.push(`${answered} answered but ${runs} runs stored`);
// AddressSanitizer keeps freed memory in quarantine: no RSS bound under it
const asan = readFileSync(`/proc/${SERVER_PID}/maps`, 'utf8').includes('libasan');
if (asan) console.log('note: the server runs under AddressSanitizer; RSS is not bounded');
else if (rssMax - rssWarm > RSS_BOUND_KB)
    failures.push(`RSS grew by ${rssMax - rssWarm} kB after the warm-up (bound ${RSS_BOUND_KB})`);
console.log(`load: ${TOTAL} requests from ${CLIENTS} clients in ${ms} ms: ${answered} answered ` +
    `(${tokens} tokens), ${refused} refused with 429, ${failures.length} failed; ${runs} runs ` +
    `stored; RSS ${rss0} kB at start, ${rssWarm} kB after ${WARMUP}, max ${rssMax} kB, ` +
    `${rssEnd} kB at the end`);
for (const f of failures.slice(0, 10)) console.log(`FAIL: ${f}`);
process.exit(failures.length ? 1 : 0);
