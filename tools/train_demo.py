#!/usr/bin/python3
"""Train ponder's demo model: a tiny qwen2 network that answers arithmetic
questions in the DeepSeek-R1 format (<think> reasoning, then the answer), and
export it to GGUF (F32 and Q8_0) with the reference fixtures the tests use.

Usage: /usr/bin/python3 tools/train_demo.py [--steps N] [--out DIR] [--fixtures DIR]
Needs PyTorch (Debian: apt-get install python3-torch); CPU only, one thread,
fixed seeds.  Writes share/models/ponder-demo.gguf (Q8_0) and, in tests/data,
ponder-demo-f32.gguf, demo_heldout.tsv/.jsonl (the 200 held-out questions with
PyTorch's greedy answers and accuracy), demo_logits*.txt (teacher-forced
logits) and demo_tokenize.jsonl.  The defaults (1600 steps of 32) took 25
minutes of training on a shared, loaded 2-core machine: 99.0 % held out.
--checkpoint FILE saves the weights, or reuses them to redo only the export.
Install libopenblas0 as well: Debian's torch falls back to netlib BLAS.
"""
import argparse
import json
import math
import os
import random
import struct
import sys
import time

# One thread: on a loaded machine OpenMP/OpenBLAS worker threads spin against
# each other and a step takes 10x longer (measured 0.4-0.6 s against 5-12 s).
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import demo_bpe  # noqa: E402
import demo_data  # noqa: E402
import demo_gguf  # noqa: E402

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    sys.exit("train_demo: needs PyTorch and numpy: apt-get install python3-torch "
             "(then run with /usr/bin/python3)")

N_REGULAR = 1024
CFG = dict(n_layer=4, n_embd=96, n_head=4, n_head_kv=2, n_ff=256, n_ctx=160,
           rope_base=10000.0, eps=1e-6)
TRAIN_SEED, HELDOUT_SEED, INIT_SEED = 1, 2, 3
N_HELDOUT = 200


# ---------------------------------------------------------------------------
# the qwen2 network, as ponder (and llama.cpp) compute it
# ---------------------------------------------------------------------------

class RMSNorm(torch.nn.Module):
    def __init__(self, n, eps):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(n))
        self.eps = eps

    def forward(self, x):
        return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))


def rope_neox(x, pos, base):
    """x [B, H, T, D]; pairs (i, i + D/2) rotated by pos * base^(-2i/D)."""
    d = x.shape[-1]
    inv = base ** (-torch.arange(0, d // 2, dtype=torch.float32) * 2.0 / d)
    ang = pos.to(torch.float32)[:, None] * inv[None, :]          # [T, D/2]
    cos, sin = ang.cos(), ang.sin()
    a, b = x[..., : d // 2], x[..., d // 2:]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        d, hd = c["n_embd"], c["n_embd"] // c["n_head"]
        self.c, self.hd = c, hd
        self.attn_norm = RMSNorm(d, c["eps"])
        self.q = torch.nn.Linear(d, c["n_head"] * hd, bias=True)
        self.k = torch.nn.Linear(d, c["n_head_kv"] * hd, bias=True)
        self.v = torch.nn.Linear(d, c["n_head_kv"] * hd, bias=True)
        self.o = torch.nn.Linear(c["n_head"] * hd, d, bias=False)
        self.ffn_norm = RMSNorm(d, c["eps"])
        self.gate = torch.nn.Linear(d, c["n_ff"], bias=False)
        self.up = torch.nn.Linear(d, c["n_ff"], bias=False)
        self.down = torch.nn.Linear(c["n_ff"], d, bias=False)

    def forward(self, x, pos):
        c, hd = self.c, self.hd
        B, T, _ = x.shape
        h = self.attn_norm(x)
        q = self.q(h).view(B, T, c["n_head"], hd).transpose(1, 2)
        k = self.k(h).view(B, T, c["n_head_kv"], hd).transpose(1, 2)
        v = self.v(h).view(B, T, c["n_head_kv"], hd).transpose(1, 2)
        q, k = rope_neox(q, pos, c["rope_base"]), rope_neox(k, pos, c["rope_base"])
        rep = c["n_head"] // c["n_head_kv"]
        k = k.repeat_interleave(rep, dim=1)   # head j uses kv group j / rep
        v = v.repeat_interleave(rep, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        o = (att @ v).transpose(1, 2).reshape(B, T, c["n_head"] * hd)
        x = x + self.o(o)
        h = self.ffn_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, c, n_vocab):
        super().__init__()
        self.c = c
        self.embd = torch.nn.Embedding(n_vocab, c["n_embd"])
        self.blocks = torch.nn.ModuleList([Block(c) for _ in range(c["n_layer"])])
        self.norm = RMSNorm(c["n_embd"], c["eps"])
        self.out = torch.nn.Linear(c["n_embd"], n_vocab, bias=False)
        for m in self.modules():
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
            elif isinstance(m, torch.nn.Embedding):
                torch.nn.init.normal_(m.weight, std=0.02)

    def forward(self, ids, where=None):
        """logits of every position, or only of the positions where is true"""
        pos = torch.arange(ids.shape[1])
        x = self.embd(ids)
        for b in self.blocks:
            x = b(x, pos)
        if where is not None:
            x = x[where]
        return self.out(self.norm(x))


# ---------------------------------------------------------------------------
# data: the R1 chat format exactly as ponder renders it (infer/chat.c)
# ---------------------------------------------------------------------------

def prompt_ids(v, question):
    """BOS <｜User｜>question<｜Assistant｜><think> "\n" (ponder's generation prompt)."""
    return ([v.special(demo_bpe.BOS), v.special(demo_bpe.USER)] + v.encode_plain(question) +
            [v.special(demo_bpe.ASSISTANT), v.special(demo_bpe.THINK)] + v.encode_plain("\n"))


def reply_ids(v, reasoning, answer):
    return (v.encode_plain(reasoning + "\n") + [v.special(demo_bpe.THINK_END)] +
            v.encode_plain("\n\n" + answer) + [v.special(demo_bpe.EOS)])


def encode_set(v, probs):
    out = []
    for _key, q, r, a in probs:
        p, y = prompt_ids(v, q), reply_ids(v, r, a)
        if len(p) + len(y) > CFG["n_ctx"]:
            raise ValueError("example longer than the context: %r" % q)
        out.append((p, y))
    return out


def batch(examples, pad):
    T = max(len(p) + len(y) for p, y in examples)
    x = torch.full((len(examples), T), pad, dtype=torch.long)
    t = torch.full((len(examples), T), -100, dtype=torch.long)
    for i, (p, y) in enumerate(examples):
        s = p + y
        x[i, :len(s)] = torch.tensor(s)
        # predict every reply token from the one before it
        t[i, len(p) - 1:len(s) - 1] = torch.tensor(y)
    return x, t


# ---------------------------------------------------------------------------
# greedy answers, as `ponder run --temp 0` makes them
# ---------------------------------------------------------------------------

@torch.no_grad()
def generate(model, v, questions, max_new):
    """greedy replies (token id lists, EOS excluded) for each question; one
    batch per prompt length, so all rows share positions."""
    eos = v.special(demo_bpe.EOS)
    groups = {}
    for i, q in enumerate(questions):
        p = prompt_ids(v, q)
        groups.setdefault(len(p), []).append((i, p))
    out = [None] * len(questions)
    for _n, items in sorted(groups.items()):
        x = torch.tensor([p for _, p in items])
        gen = [[] for _ in items]
        done = [False] * len(items)
        for _ in range(max_new):
            if x.shape[1] >= CFG["n_ctx"] or all(done):
                break
            nxt = model(x)[:, -1, :].argmax(-1)
            for j, t in enumerate(nxt.tolist()):
                if not done[j]:
                    if t == eos:
                        done[j] = True
                    else:
                        gen[j].append(t)
            x = torch.cat([x, nxt[:, None]], dim=1)
        for (i, _), g in zip(items, gen):
            out[i] = g
    return out


def split_reply(v, ids):
    """(reasoning, answer) text of a reply, split at </think>."""
    te = v.special(demo_bpe.THINK_END)
    if te in ids:
        k = ids.index(te)
        return v.decode(ids[:k]), v.decode(ids[k + 1:])
    return v.decode(ids), ""


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------

def export(model, v, path, q8, template):
    c = CFG
    w = demo_gguf.GGUFWriter()
    S, U32, F32, B, A = (demo_gguf.T_STR, demo_gguf.T_U32, demo_gguf.T_F32, demo_gguf.T_BOOL,
                         demo_gguf.T_ARR)
    w.add("general.architecture", S, "qwen2")
    w.add("general.type", S, "model")
    w.add("general.name", S, "ponder-demo")
    w.add("qwen2.block_count", U32, c["n_layer"])
    w.add("qwen2.context_length", U32, c["n_ctx"])
    w.add("qwen2.embedding_length", U32, c["n_embd"])
    w.add("qwen2.feed_forward_length", U32, c["n_ff"])
    w.add("qwen2.attention.head_count", U32, c["n_head"])
    w.add("qwen2.attention.head_count_kv", U32, c["n_head_kv"])
    w.add("qwen2.rope.freq_base", F32, c["rope_base"])
    w.add("qwen2.attention.layer_norm_rms_epsilon", F32, c["eps"])
    w.add("general.file_type", U32, 7 if q8 else 0)
    w.add("tokenizer.ggml.model", S, "gpt2")
    w.add("tokenizer.ggml.pre", S, "deepseek-r1-qwen")
    w.add("tokenizer.ggml.tokens", A, v.tokens, S)
    w.add("tokenizer.ggml.token_type", A, v.types, demo_gguf.T_I32)
    w.add("tokenizer.ggml.merges", A, v.merges, S)
    w.add("tokenizer.ggml.bos_token_id", U32, v.special(demo_bpe.BOS))
    w.add("tokenizer.ggml.eos_token_id", U32, v.special(demo_bpe.EOS))
    w.add("tokenizer.ggml.padding_token_id", U32, v.special(demo_bpe.EOS))
    w.add("tokenizer.ggml.add_bos_token", B, True)
    w.add("tokenizer.ggml.add_eos_token", B, False)
    w.add("tokenizer.chat_template", S, template)
    w.add("general.quantization_version", U32, 2)

    mat = demo_gguf.GGML_Q8_0 if q8 else demo_gguf.GGML_F32

    def t(name, p, kind=None):
        w.add_tensor(name, p.detach().numpy(), kind if kind is not None else demo_gguf.GGML_F32)

    t("token_embd.weight", model.embd.weight, mat)
    for i, b in enumerate(model.blocks):
        n = "blk.%d." % i
        t(n + "attn_norm.weight", b.attn_norm.weight)
        t(n + "attn_q.weight", b.q.weight, mat)
        t(n + "attn_q.bias", b.q.bias)
        t(n + "attn_k.weight", b.k.weight, mat)
        t(n + "attn_k.bias", b.k.bias)
        t(n + "attn_v.weight", b.v.weight, mat)
        t(n + "attn_v.bias", b.v.bias)
        t(n + "attn_output.weight", b.o.weight, mat)
        t(n + "ffn_norm.weight", b.ffn_norm.weight)
        t(n + "ffn_gate.weight", b.gate.weight, mat)
        t(n + "ffn_up.weight", b.up.weight, mat)
        t(n + "ffn_down.weight", b.down.weight, mat)
    t("output_norm.weight", model.norm.weight)
    t("output.weight", model.out.weight, mat)
    w.write(path)


def q8_roundtrip(model):
    """a copy of the model whose matrices went through Q8_0 and back."""
    import copy
    m = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if p.dim() == 2:
                a = p.detach().numpy()
                raw = demo_gguf.quantize_q8_0(a)
                p.copy_(torch.from_numpy(demo_gguf.dequantize_q8_0(raw, a.shape)))
    return m


# ---------------------------------------------------------------------------

def evaluate(model, v, held, max_new):
    replies = generate(model, v, [q for _, q, _, _ in held], max_new)
    rows, right = [], 0
    for (key, q, _r, a), ids in zip(held, replies):
        reasoning, answer = split_reply(v, ids)
        answer = answer.strip()
        ok = answer == a
        right += ok
        rows.append(dict(question=q, expected=a, answer=answer, correct=ok, reasoning=reasoning))
    return right / len(held), rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=1600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vocab", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared",
                                                    "testdata", "vocab-r1-qwen.gguf"))
    ap.add_argument("--out", default="share/models", help="where the GGUF files go")
    ap.add_argument("--fixtures", default="tests/data", help="where the reference outputs go")
    ap.add_argument("--checkpoint", default=None, help="save/load the trained weights here")
    ap.add_argument("--n-heldout", type=int, default=N_HELDOUT, help=argparse.SUPPRESS)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(INIT_SEED)
    random.seed(INIT_SEED)
    v = demo_bpe.Vocab.from_r1_qwen(args.vocab, N_REGULAR)
    template = demo_gguf.read_kv(args.vocab)["tokenizer.chat_template"]

    held = demo_data.problems(HELDOUT_SEED, N_HELDOUT, unique=True)[:args.n_heldout]
    held_keys = {p[0] for p in held}
    n_train = args.steps * args.batch
    print("train_demo: %d training examples, %d held out" % (n_train, len(held)), flush=True)
    train = encode_set(v, demo_data.problems(TRAIN_SEED, n_train, exclude=held_keys))

    model = Model(CFG, len(v.tokens))
    n_par = sum(p.numel() for p in model.parameters())
    print("train_demo: %d parameters, vocab %d" % (n_par, len(v.tokens)), flush=True)

    if args.checkpoint and os.path.exists(args.checkpoint):
        model.load_state_dict(torch.load(args.checkpoint))
    else:
        decay = [p for p in model.parameters() if p.dim() == 2]
        rest = [p for p in model.parameters() if p.dim() != 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                                 {"params": rest, "weight_decay": 0.0}],
                                lr=args.lr, betas=(0.9, 0.98))
        warm = max(1, args.steps // 50)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: min(1.0, (s + 1) / warm) *
            (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))))
        pad = v.special(demo_bpe.EOS)
        t0 = time.time()
        model.train()
        for step in range(args.steps):
            x, t = batch(train[step * args.batch:(step + 1) * args.batch], pad)
            where = t >= 0
            loss = F.cross_entropy(model(x, where), t[where])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            if args.checkpoint and step == args.steps // 2:
                torch.save(model.state_dict(), args.checkpoint + ".half")
            if step % 50 == 0 or step == args.steps - 1:
                print("step %5d  loss %.4f  lr %.2e  %.0fs" % (step, loss.item(),
                      sched.get_last_lr()[0], time.time() - t0), flush=True)
        if args.checkpoint:
            torch.save(model.state_dict(), args.checkpoint)
    model.eval()

    max_new = CFG["n_ctx"]
    acc, rows = evaluate(model, v, held, max_new)
    acc_q8, rows_q8 = evaluate(q8_roundtrip(model), v, held, max_new)
    print("train_demo: held-out accuracy %.1f %% (F32), %.1f %% (Q8_0 weights)" %
          (100 * acc, 100 * acc_q8), flush=True)

    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.fixtures, exist_ok=True)
    export(model, v, os.path.join(args.fixtures, "ponder-demo-f32.gguf"), False, template)
    export(model, v, os.path.join(args.out, "ponder-demo.gguf"), True, template)

    with open(os.path.join(args.fixtures, "demo_heldout.tsv"), "w") as f:
        f.write("# ponder demo model: %d held-out questions (seed %d), never in training.\n"
                % (len(held), HELDOUT_SEED))
        f.write("# columns: question, expected answer, PyTorch F32 greedy answer, its correctness;"
                " then the PyTorch answer with Q8_0-rounded weights and its correctness\n")
        f.write("# torch_accuracy_f32 %.3f\n# torch_accuracy_q8_0 %.3f\n" % (acc, acc_q8))
        for r, r8 in zip(rows, rows_q8):
            f.write("\t".join([r["question"], r["expected"], r["answer"], str(int(r["correct"])),
                               r8["answer"], str(int(r8["correct"]))]) + "\n")
    with open(os.path.join(args.fixtures, "demo_heldout.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")

    # the Python tokenizer's ids of held-out texts, for `ponder tokenize --cases`
    with open(os.path.join(args.fixtures, "demo_tokenize.jsonl"), "w") as f:
        for _key, q, r, a in held[:40]:
            for text in (q, "\n" + r + "\n", "\n\n" + a):
                f.write(json.dumps(dict(text=text, parse_special=False, add_bos=False,
                                        ids=v.encode_plain(text))) + "\n")

    # teacher-forced logits: three held-out conversations (prompt + reference
    # reply), every position's logits, float32 little-endian
    with open(os.path.join(args.fixtures, "demo_logits.txt"), "w") as f:
        f.write("# name, then the token ids fed to `ponder eval --ids`; reference logits of the"
                " positions listed in demo_logits_<name>.txt (position then n_vocab values)\n")
        for k, (key, q, r, a) in enumerate([held[0], held[1], held[3]]):
            ids = prompt_ids(v, q) + reply_ids(v, r, a)
            with torch.no_grad():
                lg = model(torch.tensor([ids]))[0].numpy().astype(np.float32)
            name = "p%d" % (k + 1)
            f.write(name + " " + " ".join(map(str, ids)) + "\n")
            pos = sorted(set(list(range(0, len(ids), 16)) + [len(ids) - 1]))
            with open(os.path.join(args.fixtures, "demo_logits_%s.txt" % name), "w") as g:
                for p in pos:
                    g.write(str(p) + " " + " ".join("%.9g" % x for x in lg[p]) + "\n")
    print("train_demo: wrote %s/ponder-demo.gguf (Q8_0), and the F32 file and the fixtures"
          " in %s" % (args.out, args.fixtures))


if __name__ == "__main__":
    main()
