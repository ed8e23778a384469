"""Synthetic arithmetic conversations for the demo model (tools/train_demo.py).

make_problem(rng) draws one question: addition or subtraction of numbers of up
to three digits, a one-digit times a two-digit number, or a comparison of two
decimals ("Is 9.11 larger than 9.8?"), in one of a few phrasings, with its
step-by-step reasoning and its short answer.  Deterministic given the
random.Random it is handed.
"""
import random

ADD_Q = ["What is {a} + {b}?", "Compute {a} + {b}.", "{a} + {b} = ?", "What is {a} plus {b}?",
         "Add {a} and {b}.", "Calculate {a} + {b}."]
SUB_Q = ["What is {a} - {b}?", "Compute {a} - {b}.", "{a} - {b} = ?", "What is {a} minus {b}?",
         "Subtract {b} from {a}.", "Calculate {a} - {b}."]
MUL_Q = ["What is {a} * {b}?", "Compute {a} x {b}.", "{a} * {b} = ?", "What is {a} times {b}?",
         "Multiply {a} by {b}.", "Calculate {a} * {b}."]
CMP_Q = [("Is {x} larger than {y}?", "larger"), ("Is {x} bigger than {y}?", "larger"),
         ("Is {x} greater than {y}?", "larger"), ("Is {x} smaller than {y}?", "smaller"),
         ("Which is larger, {x} or {y}?", "which larger"),
         ("Which is smaller, {x} or {y}?", "which smaller")]


def _num(rng, max_digits):
    n = rng.randint(1, max_digits)
    return rng.randint(0 if n == 1 else 10 ** (n - 1), 10 ** n - 1)


def _digits(n, width):
    s = str(n).rjust(width, "0")
    return [int(c) for c in reversed(s)]


def reason_add(a, b):
    w = max(len(str(a)), len(str(b)))
    da, db = _digits(a, w), _digits(b, w)
    lines = ["Add the digits from the right.", "%d + %d" % (a, b)]
    part, c = "", 0
    for k in range(w):
        s = da[k] + db[k] + c
        part = (str(s) if k == w - 1 else str(s % 10)) + part
        lines.append("%d+%d+%d=%d, %s" % (da[k], db[k], c, s, part))
        c = s // 10
    r = a + b
    assert int(part) == r
    lines.append("So %d + %d = %d." % (a, b, r))
    return lines, "%d + %d = %d" % (a, b, r)


def reason_sub(a, b):
    w = len(str(a))
    da, db = _digits(a, w), _digits(b, w)
    lines = ["Subtract the digits from the right.", "%d - %d" % (a, b)]
    part, br = "", 0
    for k in range(w):
        v = da[k] - db[k] - br
        if v < 0:
            lines.append("1%d-%d-%d=%d, %s" % (da[k], db[k], br, v + 10, str(v + 10) + part))
            part, br = str(v + 10) + part, 1
        else:
            lines.append("%d-%d-%d=%d, %s" % (da[k], db[k], br, v, str(v) + part))
            part, br = str(v) + part, 0
    r = a - b
    assert br == 0 and int(part) == r
    lines.append("So %d - %d = %d." % (a, b, r))
    return lines, "%d - %d = %d" % (a, b, r)


def reason_mul(m, n, a, b):
    """m two-digit, n one-digit; a, b as asked."""
    dm = _digits(m, 2)
    lines = ["Multiply the digits from the right.", "%d * %d" % (m, n)]
    part, c = "", 0
    for k in range(2):
        p = dm[k] * n
        q = p + c
        part = (str(q) if k == 1 else str(q % 10)) + part
        lines.append("%d*%d=%d, %d+%d=%d, %s" % (dm[k], n, p, p, c, q, part))
        c = q // 10
    r = m * n
    assert int(part) == r
    lines.append("So %d * %d = %d." % (a, b, r))
    return lines, "%d * %d = %d" % (a, b, r)


def _dec(rng):
    ip = rng.randint(0, 20) if rng.random() < 0.5 else rng.randint(0, 9)
    nd = rng.randint(1, 2)
    return "%d.%s" % (ip, str(rng.randint(0, 10 ** nd - 1)).rjust(nd, "0"))


def _frac2(s):
    return s.split(".")[1].ljust(2, "0")


def reason_cmp(x, y, kind):
    xi, yi = int(x.split(".")[0]), int(y.split(".")[0])
    lines = ["Compare %s and %s." % (x, y), "Whole parts: %d and %d." % (xi, yi)]
    if xi != yi:
        rel = "<" if xi < yi else ">"
        lines.append("%d %s %d, so %s %s %s." % (xi, rel, yi, x, rel, y))
    else:
        fx, fy = _frac2(x), _frac2(y)
        rel = "<" if fx < fy else ">"
        lines.append("Same, so compare the decimals: %s and %s." % (fx, fy))
        lines.append("%s %s %s, so %s %s %s." % (fx, rel, fy, x, rel, y))
    big, small = (y, x) if rel == "<" else (x, y)
    if kind == "larger":
        ans = ("Yes, %s is larger than %s." if rel == ">" else "No, %s is smaller than %s.") % (x, y)
    elif kind == "smaller":
        ans = ("Yes, %s is smaller than %s." if rel == "<" else "No, %s is larger than %s.") % (x, y)
    elif kind == "which larger":
        ans = "%s is larger." % big
    else:
        ans = "%s is smaller." % small
    return lines, ans


def make_problem(rng):
    """(key, question, reasoning text, answer text); key names the problem
    independent of its phrasing."""
    op = rng.choice(["add", "sub", "mul", "cmp"])
    if op == "add":
        a, b = _num(rng, 3), _num(rng, 3)
        lines, ans = reason_add(a, b)
        q = rng.choice(ADD_Q).format(a=a, b=b)
        key = ("add", a, b)
    elif op == "sub":
        a, b = _num(rng, 3), _num(rng, 3)
        if a < b:
            a, b = b, a
        lines, ans = reason_sub(a, b)
        q = rng.choice(SUB_Q).format(a=a, b=b)
        key = ("sub", a, b)
    elif op == "mul":
        m, n = rng.randint(10, 99), rng.randint(1, 9)
        a, b = (m, n) if rng.random() < 0.5 else (n, m)
        lines, ans = reason_mul(m, n, a, b)
        q = rng.choice(MUL_Q).format(a=a, b=b)
        key = ("mul", a, b)
    else:
        while True:
            x, y = _dec(rng), _dec(rng)
            if float(x) != float(y):
                break
        tmpl, kind = rng.choice(CMP_Q)
        lines, ans = reason_cmp(x, y, kind)
        q = tmpl.format(x=x, y=y)
        key = ("cmp", x, y)
    return key, q, "\n".join(lines), ans


def problems(seed, n, exclude=(), unique=False):
    """n problems from a Random(seed), none whose key is in exclude (and,
    if unique, no key twice)."""
    rng = random.Random(seed)
    seen = set(exclude)
    out = []
    while len(out) < n:
        p = make_problem(rng)
        if p[0] in seen:
            continue
        if unique:
            seen.add(p[0])
        out.append(p)
    return out


if __name__ == "__main__":
    for key, q, r, a in problems(1, 8):
        print(q)
        print("<think>\n" + r + "\n</think>\n\n" + a)
        print("----")
