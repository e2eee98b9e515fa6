"""The test harness that runs inside the sandbox (``python3 -S -I``; rlvr sends it compiled, on stdin).

It is a standalone script (standard library only, Python 3.9+, no ``site``) and is never imported by rlvr.

Trust model. This process, the *judge*, never executes solution code. The solution runs in forked children:

* stdin/stdout cases: one child per case runs the program as ``__main__`` with that case's stdin (an
  anonymous memfd) and its stdout/stderr piped back to the judge, capped in size.
* assert tests: one child (the *solution server*) executes the solution once and then answers calls over
  a pipe. The judge executes the tests itself, with every solution name bound to a proxy; a call sends
  its arguments to the server and gets the return value back through ``marshal``, which only encodes
  exact builtin types. Values that reach the tests are therefore genuine ``int``/``str``/``list``/...
  objects: an ``__eq__`` that always returns True or a lying ``str`` subclass cannot cross the pipe.

Everything the solution could use to fake a pass lives only in the judge, and reaches it only after the
children have been forked: the expected outputs, the test code and the per-run nonce are read from stdin
in a second frame, after the first frame (solution and case inputs) has been served. Children close
stdin and the report channel before any solution code runs, and the sandbox has no ``/proc`` through
which they could reopen them. Before the tests are read, every process that stdin/stdout programs left
behind is killed; a judge that keeps the solution server alive makes itself non-dumpable, so that the
server cannot ptrace it or read its memory.

Protocol (stdin): frames of an 8-byte little-endian length and a ``marshal`` payload. Frame 0 is this
script's code object (read by a small bootstrap), then
  frame 1: {"solution": str, "io_inputs": [str], "rpc": bool, "rlimits": {name: int}, "output_limit": int,
            "sweep": bool (in the sandbox's pid namespace, kill leftover processes)}
  frame 2: {"nonce": str, "suites": [suite]} where a suite is
           {"name": str, "kind": "assert", "steps": [source]} or
           {"name": str, "kind": "io", "offset": int, "expected": [str]}
Report, on fd 1 (kept private: the tests' own prints go to stderr):
  repr({"nonce": str, "suites": [{"name": str, "results": [(passed, message), ...]}]})
"""

import _signal as signal  # the public ``signal`` module imports ``enum``: too slow for every run
import builtins
import marshal
import os
import select
import sys

MAX_FRAME = 256 << 20
MESSAGE_CHARS = 400
MAX_ITER_ITEMS = 100_000
PR_SET_DUMPABLE = 4
# Standard modules that tests get from the judge's own import when they use the solution's: a solution
# cannot patch ``math.isclose`` or ``collections.Counter`` for the tests. (Top-level modules only.)
TRUSTED_MODULES = frozenset(
    "array bisect cmath collections copy datetime decimal fractions functools hashlib heapq itertools "
    "json math numbers operator random re statistics string typing".split()
)


# ----------------------------------------------------------------------------------------------------
# framing


def read_exact(fd, n):
    chunks = []
    while n > 0:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def read_frame(fd):
    size = int.from_bytes(read_exact(fd, 8), "little")
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is over the limit")
    return marshal.loads(read_exact(fd, size))


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_frame(fd, obj):
    data = marshal.dumps(obj)
    write_all(fd, len(data).to_bytes(8, "little") + data)


def short(text, limit=MESSAGE_CHARS):
    text = str(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short_repr(value, limit=120):
    try:
        return short(repr(value), limit)
    except Exception:
        return f"<{type(value).__name__}>"


def describe(exc):
    """``Type: message`` of an exception raised by solution code, computed defensively."""
    try:
        message = str(exc)
    except BaseException:
        message = "<unprintable>"
    name = type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.lineno:
        return short(f"{name}: {exc.msg} (line {exc.lineno})")
    return short(f"{name}: {message}" if message else name)


# ----------------------------------------------------------------------------------------------------
# children


def exit_program(code=None):
    """``exit()`` / ``quit()``, which ``site`` would have provided."""
    raise SystemExit(code)


def become_child(stdin_fd, stdout_fd, stderr_fd, keep=()):
    """Wire the standard streams of a freshly forked child and close every descriptor not in ``keep``."""
    builtins.exit = builtins.quit = exit_program
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    os.dup2(stdin_fd, 0)
    os.dup2(stdout_fd, 1)
    os.dup2(stderr_fd, 2)
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 1 << 16)


def run_main(code):
    """Execute ``code`` as ``__main__`` in this (child) process and exit with the program's status."""
    status = 0
    try:
        exec(compile(code, "<solution>", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as e:
        if e.code is None:
            status = 0
        elif isinstance(e.code, int):
            status = e.code
        else:
            sys.stderr.write(str(e.code) + "\n")
            status = 1
    except BaseException:
        sys.__excepthook__(*sys.exc_info())
        status = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        status = status or 1
    os._exit(status & 0xFF)


def run_program(code, stdin_text, output_limit):
    """Run the program on one stdin; return (exit status, stdout bytes or None if over the cap, stderr)."""
    stdin_fd = os.memfd_create("stdin")
    write_all(stdin_fd, stdin_text.encode("utf-8"))
    os.lseek(stdin_fd, 0, os.SEEK_SET)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            become_child(stdin_fd, out_w, err_w)
            run_main(code)
        finally:
            os._exit(1)
    for fd in (stdin_fd, out_w, err_w):
        os.close(fd)
    out, err, overflow = bytearray(), bytearray(), False
    # Read until both pipes close or, once the program has exited, until they have nothing more to
    # give: a process it left behind may hold them open.
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # Linux before 5.3: wait for the pipes to close
        pidfd = None
    exited = False
    open_fds = [out_r, err_r]
    while open_fds:
        watched = open_fds if exited or pidfd is None else open_fds + [pidfd]
        ready = select.select(watched, [], [], 0 if exited else None)[0]
        if not ready:
            break
        for fd in ready:
            if fd == pidfd:
                exited = True
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.remove(fd)
                continue
            buf = out if fd == out_r else err
            buf += chunk
            if len(buf) > output_limit:
                overflow = True
                kill(pid)
                open_fds = []
                break
    for fd in (out_r, err_r, pidfd):
        if fd is not None:
            os.close(fd)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    return status, None if overflow else bytes(out), bytes(err[-2000:])


def kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


# ----------------------------------------------------------------------------------------------------
# the solution server (child side)


def serve(code, rfd, wfd):
    """Execute the solution, announce its names, then answer call/getattr requests until the pipe closes."""
    objects = []
    namespace = {"__name__": "solution", "__builtins__": builtins}
    try:
        exec(compile(code, "<solution>", "exec"), namespace)
    except BaseException as e:
        write_frame(wfd, ("error", describe(e)))
        return
    names = {}
    for name, value in list(namespace.items()):
        if not name.startswith("__"):
            names[name] = encode(value, objects)
    write_frame(wfd, ("ready", names))
    while True:
        try:
            op, ref, attr, args, kwargs = read_frame(rfd)
        except EOFError:
            return
        try:
            target = objects[ref]
            if op == "getattr":
                reply = ("ok", encode(getattr(target, attr), objects), [])
            else:
                args = [objects[value] if kind == "r" else value for kind, value in args]
                func = target if op == "call" else getattr(target, attr)
                result = func(*args, **kwargs)
                # In-place changes to list/dict/set arguments travel back so tests can check them.
                mutated = [(i, a) for i, a in enumerate(args) if type(a) in (list, dict, set) and plain(a)]
                reply = ("ok", encode(result, objects), mutated)
        except BaseException as e:
            reply = ("raise", type(e).__name__, describe(e))
        try:
            write_frame(wfd, reply)
        except ValueError:  # e.g. nested too deeply for marshal
            write_frame(wfd, ("raise", "ValueError", "the result cannot be sent back to the tests"))


def plain(value):
    try:
        marshal.dumps(value)
        return True
    except ValueError:
        return False


def encode(value, objects):
    """A reply for ``value``: a plain builtin value, an exhausted iterator's items, or a remote reference."""
    if plain(value):
        return ("value", value)
    if hasattr(type(value), "__next__") and hasattr(type(value), "__iter__"):
        items = []
        for item in value:
            if len(items) == MAX_ITER_ITEMS:
                break
            items.append(item)
        if plain(items):
            return ("iter", items)
    objects.append(value)
    return ("ref", len(objects) - 1, type(value).__name__, trusted_module(value))


def trusted_module(value):
    """The name of ``value`` if it is a module from TRUSTED_MODULES, else None."""
    if type(value) is type(sys) and value.__name__ in TRUSTED_MODULES:
        return value.__name__
    return None


# ----------------------------------------------------------------------------------------------------
# the judge's side of the solution server


class SolutionError(Exception):
    """The solution raised an exception that has no builtin counterpart, or its process died."""


class Server:
    def __init__(self, code):
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                null = os.open("/dev/null", os.O_RDWR)
                become_child(null, null, null, keep=(req_r, resp_w))
                serve(code, req_r, resp_w)
            finally:
                os._exit(0)
        os.close(req_r)
        os.close(resp_w)
        self.w, self.r = req_w, resp_r
        self.dead = None
        self.names = {}
        try:
            reply = read_frame(self.r)
            if reply[0] == "error":
                self.dead = "the solution failed to load: " + str(reply[1])
            else:
                self.names = {str(name): self.decode(r, name) for name, r in reply[1].items()}
        except Exception:  # closed, cut short or garbled by the solution
            self.dead = "the solution process died or broke its pipe while loading"

    def request(self, op, ref, attr, args, kwargs, label):
        if self.dead:
            raise SolutionError(self.dead)
        try:
            write_frame(self.w, (op, ref, attr, encode_args(args), kwargs))
            reply = read_frame(self.r)
        except Exception:
            self.dead = "the solution process died or broke its pipe during " + label
            raise SolutionError(self.dead) from None
        if reply[0] == "raise":
            raise rebuild_exception(reply[1], reply[2], label)
        for i, new in reply[2]:
            update_in_place(args[i], new)
        return self.decode(reply[1], label)

    def decode(self, reply, label):
        if reply[0] == "value":
            return reply[1]
        if reply[0] == "iter":
            return iter(reply[1])
        if reply[3] in TRUSTED_MODULES:
            return __import__(reply[3])  # the judge's own module, not the solution's (maybe patched) one
        return Remote(self, reply[1], reply[2], label)

    def close(self):
        kill(self.pid)
        os.waitpid(self.pid, 0)


def rebuild_exception(name, message, label):
    """Re-raise a solution exception as the builtin type of that name, so tests can catch it."""
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(f"{label} raised {message}")
        except Exception:
            pass
    return SolutionError(f"{label} raised {message}")


def update_in_place(original, new):
    if type(original) is type(new) and original != new:
        if isinstance(original, list):
            original[:] = new
        else:
            original.clear()
            original.update(new)


def encode_args(args):
    out = []
    for a in args:
        if isinstance(a, Remote):
            out.append(("r", a._ref))
        elif plain(a):
            out.append(("v", a))
        else:
            raise TypeError(f"cannot pass a {type(a).__name__} to the solution (only plain values)")
    return out


class Remote:
    """A proxy for a solution object: calls, attributes and a few protocols are forwarded to the server."""

    def __init__(self, server, ref, type_name, label):
        self._server, self._ref, self._type, self._label = server, ref, type_name, label

    def _call(self, op, attr, args, kwargs, label):
        if not all(plain(v) for v in kwargs.values()):
            raise TypeError("cannot pass a non-plain keyword argument to the solution")
        return self._server.request(op, self._ref, attr, args, kwargs, label)

    def __call__(self, *args, **kwargs):
        shown = ", ".join(short_repr(a, 60) for a in args)
        label = f"{self._label}({shown})"
        return self._call("call", None, args, kwargs, label)

    def __getattr__(self, attr):
        if attr.startswith("_"):
            raise AttributeError(attr)
        label = f"{self._label}.{attr}"
        return self._server.request("getattr", self._ref, attr, [], {}, label)

    def __len__(self):
        return self._call("method", "__len__", (), {}, f"len({self._label})")

    def __getitem__(self, key):
        return self._call("method", "__getitem__", (key,), {}, f"{self._label}[{short_repr(key)}]")

    def __contains__(self, item):
        return self._call("method", "__contains__", (item,), {}, f"in {self._label}")

    def __iter__(self):
        return iter(self._call("method", "__iter__", (), {}, f"iter({self._label})"))

    def __repr__(self):
        return f"<solution {self._type} {self._label}>"


# ----------------------------------------------------------------------------------------------------
# assertions and comparisons (run by the judge on plain values)


class TestFailure(AssertionError):
    pass


def assert_equal(left, right, line):
    # Solution values arrive here rebuilt by marshal, so they are exact builtin types and ``==`` is honest.
    if not left == right:
        raise TestFailure(f"line {line}: {short_repr(left)} != {short_repr(right)}")


def assert_true(value, line):
    if not value:
        raise TestFailure(f"line {line}: assertion failed (value {short_repr(value)})")


def run_assert_suite(steps, server, entry_point):
    namespace = {"__name__": "__rlvr_tests__", "__builtins__": builtins}
    # Solution names that shadow builtins (a ``sorted`` or ``len`` the tests would call) are not bound,
    # except the entry point itself.
    namespace.update(
        (name, value)
        for name, value in server.names.items()
        if name == entry_point or not hasattr(builtins, name)
    )
    namespace["__rlvr_assert_equal"] = assert_equal
    namespace["__rlvr_assert_true"] = assert_true
    if server.dead:  # the solution did not even load (syntax error, exception, exit at import)
        return [(False, short(server.dead))] * len(steps)
    results = []
    for source in steps:
        try:
            exec(compile(source, "<rlvr-tests>", "exec"), namespace)
            results.append((True, ""))
        except TestFailure as e:
            results.append((False, short(e)))
        except Exception as e:
            results.append((False, describe(e)))
    return results


def output_lines(text):
    lines = [line.rstrip() for line in text.split("\n")]  # rstrip also drops the \r of \r\n
    while lines and not lines[-1]:
        lines.pop()
    return lines


def judge_output(outcome, expected, output_limit):
    status, out, err = outcome
    if out is None:
        return False, f"output exceeded {output_limit} bytes"
    if status != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()
        return False, short(f"exit status {status}: {tail[-1]}" if tail else f"exit status {status}")
    got, want = output_lines(out.decode("utf-8", "replace")), output_lines(expected)
    for i, (g, w) in enumerate(zip(got, want), start=1):  # noqa: B905 (zip(strict=) needs 3.10)
        if g != w:
            return False, f"output line {i}: got {short_repr(g)}, expected {short_repr(w)}"
    if len(got) != len(want):
        return False, f"output has {len(got)} line(s), expected {len(want)}"
    return True, ""


# ----------------------------------------------------------------------------------------------------


def set_rlimits(rlimits):
    import resource

    for name, value in rlimits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


def make_undumpable():
    """Forbid ptrace, process_vm_readv and pidfd_getfd on the judge: children run as the same uid."""
    import ctypes

    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE, 0) failed")


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    report_fd = os.dup(1)  # the report channel; anything the tests print goes to stderr instead
    os.dup2(2, 1)
    setup = read_frame(0)
    set_rlimits(setup["rlimits"])
    code, limit = setup["solution"], setup["output_limit"]
    outcomes = [run_program(code, text, limit) for text in setup["io_inputs"]]
    # In the sandbox's own pid namespace (bubblewrap's init is pid 1, the judge pid 2; never so on a
    # host) end every process the programs left behind.
    swept = setup["sweep"] and os.getpid() == 2 and os.getppid() == 1
    if swept:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server = None
    if setup["rpc"] or not swept:  # untrusted processes may be alive while the tests run
        make_undumpable()
        server = Server(code) if setup["rpc"] else None
    tests = read_frame(0)  # only now: nothing forked above has seen the tests or the nonce
    os.close(0)
    report = {"nonce": tests["nonce"], "suites": []}
    for suite in tests["suites"]:
        if suite["kind"] == "assert":
            results = run_assert_suite(suite["steps"], server, suite.get("entry_point"))
        else:
            offset = suite["offset"]
            results = [
                judge_output(outcomes[offset + i], want, limit) for i, want in enumerate(suite["expected"])
            ]
        report["suites"].append({"name": suite["name"], "results": results})
    if server is not None:
        server.close()
    write_all(report_fd, repr(report).encode("utf-8"))
    os._exit(0)


if __name__ == "__main__":
    main()
