"""The demo model's vocabulary and a byte-level BPE tokenizer for it.

Vocabulary: the first N regular tokens of DeepSeek-R1-Distill-Qwen (from the
reference vocab-r1-qwen.gguf), the real merges whose two parts and result are
all kept (rank order unchanged), then the R1 added tokens from id N.
encode_plain() is the "plain rule" for ASCII text: the deepseek-r1-qwen
pre-tokenizer (one digit per piece), then merges by lowest rank, leftmost first.
"""
import re

import demo_gguf

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
EOT = "<|EOT|>"
THINK = "<think>"
THINK_END = "</think>"
# the order of the real R1-Distill-Qwen added tokens (151643..151649)
ADDED = [EOS, USER, ASSISTANT, BOS, EOT, THINK, THINK_END]
NORMAL, CONTROL, USER_DEFINED = 1, 3, 4

# deepseek-r1-qwen pre-tokenizer, written for ASCII text (\p{L} = letters,
# \p{N} = digits; \s = [ \t\n\v\f\r]).
_SPLIT = re.compile(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\nA-Za-z0-9]?[A-Za-z]+|[0-9]"
                    r"| ?[^\sA-Za-z0-9]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+", re.ASCII)


def _byte_map():
    keep = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    m, n = {}, 0
    for b in range(256):
        if b in keep:
            m[b] = chr(b)
        else:
            m[b] = chr(256 + n)
            n += 1
    return m


BYTE_MAP = _byte_map()
BYTE_UNMAP = {v: k for k, v in BYTE_MAP.items()}


class Vocab:
    def __init__(self, tokens, types, merges):
        self.tokens = tokens
        self.types = types
        self.merges = merges
        self.id = {t: i for i, t in enumerate(tokens)}
        self.rank = {}
        for r, m in enumerate(merges):
            a, b = m.split(" ")
            self.rank[(a, b)] = r

    @classmethod
    def from_r1_qwen(cls, path, n_regular):
        kv = demo_gguf.read_kv(path)
        real = kv["tokenizer.ggml.tokens"]
        regular = real[:n_regular]
        if len(set(regular)) != n_regular:
            raise ValueError("duplicate regular tokens")
        kept = set(regular)
        merges = []
        for m in kv["tokenizer.ggml.merges"]:
            a, b = m.split(" ")
            if a in kept and b in kept and a + b in kept:
                merges.append(m)
        tokens = list(regular) + ADDED
        types = [NORMAL] * n_regular + [CONTROL if t.startswith("<｜") or t.startswith("<|")
                                        else USER_DEFINED for t in ADDED]
        return cls(tokens, types, merges)

    def _bpe(self, piece):
        sym = [BYTE_MAP[b] for b in piece.encode("utf-8")]
        while len(sym) > 1:
            best, at = None, -1
            for i in range(len(sym) - 1):
                r = self.rank.get((sym[i], sym[i + 1]))
                if r is not None and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            sym[at:at + 2] = [sym[at] + sym[at + 1]]
        return [self.id[s] for s in sym]

    def encode_plain(self, text):
        """ids of ASCII text by the plain rule (no added token is matched)."""
        if not text.isascii():
            raise ValueError("the demo tokenizer takes ASCII text only")
        ids = []
        pos = 0
        for m in _SPLIT.finditer(text):
            if m.start() != pos:  # text between matches is a piece too
                ids += self._bpe(text[pos:m.start()])
            ids += self._bpe(m.group(0))
            pos = m.end()
        if pos != len(text):
            ids += self._bpe(text[pos:])
        return ids

    def special(self, name):
        return self.id[name]

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.tokens[i]
            if self.types[i] == NORMAL:
                out += bytes(BYTE_UNMAP[c] for c in t)
            else:
                out += t.encode("utf-8")
        return out.decode("utf-8", "replace")
