#!/usr/bin/env python3
"""Runs every ```sql example of README.md and docs/*.md, as written.

    python3 tests/docs/run.py [FILE.md ...]      (default: README.md docs/*.md)

Connects with psql to the PostgreSQL that PGHOST/PGPORT/PGUSER name (a
superuser). For each file it creates a fresh database, runs every ```sql
block of the file in document order in one psql session (so psql variables
set with \\gset carry from block to block), then drops that database and
every database and role the file created. Prints one line per file,
"<file>: N passed, N failed" (per statement), and last "N passed, N failed".

What is checked, per statement:

- Comment lines directly under a statement (no blank line in between) are
  what PostgreSQL prints for it, without the leading "-- ":

      SELECT tenancy.set_tenant('nobody');
      -- ERROR:  tenant "nobody" not found

  When they are all messages (ERROR:, DETAIL:, HINT:, WARNING:, NOTICE:,
  INFO:, "Asynchronous notification ..."), they must equal the messages the
  statement printed (a NOTICE the doc does not show is let through).
  Otherwise they must equal its whole output, either as psql prints it or
  compact: without the header, the ----+---- line, the "(N rows)" footer
  and command tags such as "INSERT 0 1", so that a row can be shown as

      -- acme-corp | active

  Runs of blanks count as one blank, and "…" stands for any text.
  A prose comment after a statement is separated from it by a blank line; a
  comment on the statement's own line is prose.
- A statement under which the doc shows nothing must print no ERROR and no
  WARNING.

Conventions, as HTML comments on the lines just above a block's fence:

    <!-- doctest: illustrative -->     not run: a block no reader would type
                                       (a signature, a fragment)
    <!-- doctest: pending REASON -->   not run yet, counted and listed as pending
    <!-- doctest: role NAME -->        from this block on, a new session
                                       as NAME (\\connect - NAME; needs LOGIN);
                                       "role postgres" goes back
    <!-- doctest: new-session -->      this block starts in a new session
                                       (of the current role)

A file whose text holds <!-- doctest: citus --> needs a Citus cluster: it is
skipped (and said so) unless DOCTEST_DATABASE names a database of the
coordinator PGHOST/PGPORT point at, with Citus and its workers set up, which
the file then runs in (not created nor dropped); tests/citus/docs.test.sh
runs it so.

Blocks fenced otherwise (```sh, ```text, ```python, plain ```) are not run.
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MARK = "@@doctest-mark {}@@"
MARK_RE = re.compile(r"^@@doctest-mark (\d+)@@$")
MESSAGE_RE = re.compile(r"^(ERROR|WARNING|NOTICE|INFO|DETAIL|HINT):|^Asynchronous notification ")
PSQL_PREFIX_RE = re.compile(r"^psql:[^\n]*?:\d+: ")
TAG_RE = re.compile(r"^[A-Z][A-Z ]*[A-Z]( \d+)*$")
FOOTER_RE = re.compile(r"^\(\d+ rows?\)$")
SEPARATOR_RE = re.compile(r"^[-+ ]*-[-+ ]*$")
DIRECTIVE_RE = re.compile(r"^<!--\s*doctest:\s*(.*?)\s*-->$")
PSQL = os.environ.get("PSQL", "psql")
TIMEOUT = int(os.environ.get("DOCTEST_TIMEOUT", "900"))


# ---------------------------------------------------------------- parsing

class Block:
    def __init__(self, path, line, text, directives):
        self.path, self.line, self.text, self.directives = path, line, text, directives
        self.statements = split_statements(text, line)

    def directive(self, name):
        for d in self.directives:
            word, _, arg = d.partition(" ")
            if word == name:
                return arg.strip() or True
        return None


def blocks_of(path):
    lines = path.read_text().split("\n")
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        indent, lang = fence.group(1), fence.group(2)
        start = i
        i += 1
        body = []
        while i < len(lines) and not re.match(r"^\s*```\s*$", lines[i]):
            body.append(lines[i][len(indent):] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        i += 1
        if lang != "sql":
            continue
        directives, j = [], start - 1
        while j >= 0 and (DIRECTIVE_RE.match(lines[j].strip()) or (lines[j].strip() == "" and j == start - 1)):
            m = DIRECTIVE_RE.match(lines[j].strip())
            if m:
                directives.insert(0, m.group(1))
            j -= 1
        out.append(Block(path, start + 2, "\n".join(body), directives))
    return out


class Statement:
    def __init__(self, text, line):
        self.text, self.line, self.expected = text, line, []
        self.unterminated = False


def split_statements(text, first_line):
    """psql's statement boundaries: ';' outside quotes, comments and parentheses,
    or the end of a line holding a backslash command. The comment lines right
    under a statement are its expected output."""
    stmts, buf, i, n = [], [], 0, len(text)
    depth, start_line = 0, None
    line_no = first_line

    def has_sql(chunks):
        s = "".join(chunks)
        s = re.sub(r"--[^\n]*", "", s)
        return s.strip() != ""

    def finish(end):
        nonlocal buf, i, line_no, depth, start_line
        # the rest of the line, if only a comment, belongs to the statement
        eol = text.find("\n", end)
        eol = n if eol < 0 else eol
        rest = text[end:eol]
        if rest.strip() and not rest.strip().startswith("--"):
            eol, rest = end, ""  # another statement follows on the same line
        st = Statement(("".join(buf) + rest).strip("\n"), start_line)
        stmts.append(st)
        buf, depth, start_line = [], 0, None
        i = eol
        if rest == "" and eol == end and text[end:end + 1] != "\n" and end < n:
            return
        # the comment lines directly below are what it prints
        while i < n and text[i] == "\n":
            nxt = text.find("\n", i + 1)
            nxt = n if nxt < 0 else nxt
            line = text[i + 1:nxt].strip()
            if not line.startswith("--"):
                break
            st.expected.append(re.sub(r"^--\s?", "", line))
            line_no += 1
            i = nxt

    while i < n:
        c = text[i]
        if start_line is None and not c.isspace():
            start_line = line_no
        if c == "\n":
            line_no += 1
            buf.append(c)
            i += 1
            if not has_sql(buf):
                buf, start_line = [], None
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            buf.append(text[i:j])
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line_no += text[i:j].count("\n")
            buf.append(text[i:j])
            i = j
            continue
        if c == "'" or c == '"':
            j = i + 1
            while j < n:
                if text[j] == c and j + 1 < n and text[j + 1] == c:
                    j += 2
                    continue
                if text[j] == c:
                    break
                j += 1
            line_no += text[i:j + 1].count("\n")
            buf.append(text[i:j + 1])
            i = j + 1
            continue
        if c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", text[i:])
            if m and not (i > 0 and (text[i - 1].isalnum() or text[i - 1] == "_")):
                tag = m.group(0)
                j = text.find(tag, i + len(tag))
                j = n if j < 0 else j + len(tag)
                line_no += text[i:j].count("\n")
                buf.append(text[i:j])
                i = j
                continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth = max(0, depth - 1)
        elif c == ";" and depth == 0:
            buf.append(c)
            finish(i + 1)
            continue
        elif c == "\\":
            j = text.find("\n", i)
            j = n if j < 0 else j
            buf.append(text[i:j])
            finish(j)
            continue
        buf.append(c)
        i += 1
    if has_sql(buf):
        st = Statement("".join(buf).strip("\n"), start_line or line_no)
        st.unterminated = True
        stmts.append(st)
    return stmts


# ---------------------------------------------------------------- comparing

def normal(line):
    line = " ".join(line.split())
    if SEPARATOR_RE.match(line) and "-" in line:
        return "---"
    return line


def renderings(lines):
    """The ways a doc may show this output."""
    lines = [normal(l) for l in lines]
    lines = [l for l in lines if l != ""]
    out = []
    for compact in (False, True):
        for drop_tags in (False, True):
            for drop_notices in (False, True):
                r = []
                for k, l in enumerate(lines):
                    if drop_notices and l.startswith("NOTICE:"):
                        continue
                    if drop_tags and TAG_RE.match(l):
                        continue
                    if compact:
                        if l == "---" or FOOTER_RE.match(l):
                            continue
                        if k + 1 < len(lines) and lines[k + 1] == "---":
                            continue
                    elif FOOTER_RE.match(l) and drop_tags:
                        continue
                    r.append(l)
                out.append(r)
    return out


def pattern(line):
    parts = [re.escape(p) for p in normal(line).split("…")]
    return re.compile(".*?".join(parts) + r"\Z", re.S)


def matches(expected, actual):
    exp = [e for e in (normal(x) for x in expected) if e != ""]
    if len(exp) != len(actual):
        return False
    return all(pattern(e).match(a) for e, a in zip(exp, actual))


def check(st, output):
    """None when the statement printed what the doc shows, else the reason."""
    msgs = [normal(l) for l in output if MESSAGE_RE.match(l)]
    bad = [m for m in msgs if m.startswith(("ERROR:", "WARNING:"))]
    if not st.expected:
        return None if not bad else "the doc shows no error or warning here"
    expected = [e for e in st.expected if e.strip()]
    if all(MESSAGE_RE.match(e) for e in expected):
        candidates = [msgs, [m for m in msgs if not m.startswith("NOTICE:")]]
    else:
        candidates = renderings(output)
    if any(matches(expected, c) for c in candidates):
        return None
    return "the output differs from the doc"


# ---------------------------------------------------------------- running

def psql_admin(sql, db="postgres"):
    r = subprocess.run([PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(r.stderr.strip())
    return [l for l in r.stdout.split("\n") if l]


def cluster_objects():
    return (set(psql_admin("SELECT datname FROM pg_database")),
            set(psql_admin("SELECT rolname FROM pg_roles")))


def qi(name):
    return '"' + name.replace('"', '""') + '"'


def cleanup(dbs, roles):
    for db in sorted(dbs):
        psql_admin(f"DROP DATABASE IF EXISTS {qi(db)} WITH (FORCE)")
    for role in sorted(roles):
        psql_admin(f"DROP ROLE IF EXISTS {qi(role)}")


def run_file(path):
    blocks = blocks_of(path)
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    given = os.environ.get("DOCTEST_DATABASE")
    if "<!-- doctest: citus -->" in path.read_text() and not given:
        print(f"{rel}: skipped (needs a Citus cluster: tests/citus/docs.test.sh runs it)", flush=True)
        return 0, 0
    db = given or "doctest_" + re.sub(r"[^a-z0-9]+", "_", path.stem.lower())
    dbs0, roles0 = cluster_objects()
    wanted = {m.group(1) for b in blocks if not b.directive("illustrative")
              for m in re.finditer(r"CREATE\s+(?:ROLE|USER)\s+([a-z_][a-z0-9_]*)", b.text, re.I)}
    taken = sorted(wanted & roles0)
    if taken:
        raise RuntimeError(f"roles {', '.join(taken)} exist already; the file creates them, so it needs a cluster without them")
    if given:
        pass
    elif db in dbs0:
        psql_admin(f"DROP DATABASE {qi(db)} WITH (FORCE)")
        dbs0.discard(db)
    if not given:
        psql_admin(f"CREATE DATABASE {qi(db)}")

    script = ["\\set SHOW_CONTEXT never", "\\set VERBOSITY default", "\\pset pager off"]
    plan = []  # (kind, block, statement) per mark
    pending, unterminated = [], []
    for b in blocks:
        if b.directive("illustrative"):
            continue
        reason = b.directive("pending")
        if reason:
            pending.append((b, reason))
            continue
        role = b.directive("role")
        if role:
            script.append(f"\\connect - {role}")
            plan.append(("setup", b, None))
            script.append(f"\\echo {MARK.format(len(plan) - 1)}")
        elif b.directive("new-session"):
            script.append("\\connect")
            plan.append(("setup", b, None))
            script.append(f"\\echo {MARK.format(len(plan) - 1)}")
        for st in b.statements:
            if st.unterminated:
                unterminated.append((b, st))
                continue
            script.append(st.text)
            plan.append(("stmt", b, st))
            script.append(f"\\echo {MARK.format(len(plan) - 1)}")

    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write("\n".join(script) + "\n")
        script_path = f.name
    try:
        r = subprocess.run([PSQL, "-X", "-v", "ON_ERROR_STOP=0", "-d", db, "-f", script_path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=TIMEOUT, stdin=subprocess.DEVNULL)
        raw = r.stdout
    except subprocess.TimeoutExpired as e:
        raw = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        raw += "\n(timed out)\n"
    finally:
        os.unlink(script_path)

    outputs, current = {}, []
    for line in raw.split("\n"):
        m = MARK_RE.match(line)
        if m:
            outputs[int(m.group(1))] = current
            current = []
            continue
        line = PSQL_PREFIX_RE.sub("", line.rstrip())
        if re.match(r"^LINE \d+:", line) or re.match(r"^\s*\^\s*$", line):
            continue
        current.append(line)
    tail = current

    passed = failed = 0
    report = []
    for b, st in unterminated:
        failed += 1
        report.append(f"  FAIL {rel}:{st.line}: not a statement psql would run (no ';' at its end)\n"
                      + indent(st.text.split("\n"), "    > "))
    for k, (kind, b, st) in enumerate(plan):
        if k not in outputs:
            failed += 1
            where = f"{rel}:{st.line if st else b.line}"
            report.append(f"  FAIL {where}: never ran (psql stopped)\n" + indent(tail[-20:], "    | "))
            continue
        out = outputs[k]
        if kind == "setup":
            if any(l.startswith(("ERROR:", "FATAL:", "connection to server")) or "FATAL:" in l for l in out):
                failed += 1
                report.append(f"  FAIL {rel}:{b.line}: the block's session could not start\n" + indent(out, "    | "))
            continue
        why = check(st, out)
        if why is None:
            passed += 1
        else:
            failed += 1
            report.append(f"  FAIL {rel}:{st.line}: {why}\n" + indent(st.text.split("\n"), "    > ")
                          + "\n    doc shows:\n" + indent(st.expected or ["(nothing)"], "    - ")
                          + "\n    PostgreSQL printed:\n" + indent([l for l in out if l.strip()] or ["(nothing)"], "    + "))

    dbs1, roles1 = cluster_objects()
    if given:
        # The given database stays (its cluster goes with the test), and so
        # do the roles that own objects in it.
        cleanup(dbs1 - dbs0, set())
    else:
        cleanup((dbs1 - dbs0) | {db}, roles1 - roles0)

    for line in report:
        print(line)
    suffix = ""
    if pending:
        suffix = "; pending: " + "; ".join(f"line {b.line} ({reason})" for b, reason in pending)
    print(f"{rel}: {passed} passed, {failed} failed{suffix}", flush=True)
    return passed, failed


def indent(lines, prefix):
    return "\n".join(prefix + l for l in lines)


def main(argv):
    files = [Path(a).resolve() for a in argv] or [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
    total_p = total_f = 0
    for path in files:
        try:
            p, f = run_file(path)
        except Exception as e:  # a harness or cluster problem counts as a failure
            rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
            print(f"{rel}: harness error: {e}")
            p, f = 0, 1
        total_p += p
        total_f += f
    print(f"{total_p} passed, {total_f} failed")
    return 0 if total_f == 0 and total_p > 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
