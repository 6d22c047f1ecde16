"""Command-line overrides of a script's module-level hyperparameters (``--name=value``).

Like nanoGPT's configurator: every module-level int/float/str/bool the script declares in its
hyperparameter block can be overridden; values are coerced to the default's type; an unknown key
or a value of the wrong type is a one-line error (exit status 2). Float values must be finite;
``configure`` also checks the ranges a script names (positive, non-negative, fractions; counts at
most 2**31 - 1) and any ``seed`` (0 .. 2**32 - 1, what NumPy's RandomState takes), and that the
output folders and files it names can be written (``check_output``); the script checks the rest
with ``FlagError`` before it starts any work, so an error names the flag the user typed. ``--help``
(or ``-h``) lists the flags with their defaults and the comments of the hyperparameter block.

``command(main)`` runs a script's ``main`` as a command: Ctrl-C (SIGINT) and SIGTERM end it with
one line and exit status 130 and 143, as shells expect (training turns them into a checkpoint
first: lib/train.py).
"""
import argparse
import math
import os
import re
import signal
import sys
from pathlib import Path


class FlagError(ValueError):
    """A bad command-line flag (message is one line)."""


_TYPES = (bool, int, float, str)


def overridable(namespace, names):
    """The (name, default) pairs of ``names`` in ``namespace`` with a simple type."""
    return {n: namespace[n] for n in names if isinstance(namespace.get(n), _TYPES)}


def _coerce(name, default, text):
    if isinstance(default, bool):
        low = text.lower()
        if low in ("1", "true", "yes", "on", ""):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise FlagError(f"--{name}={text}: expected a boolean (true/false)")
    try:
        if isinstance(default, int):
            try:
                return int(text)
            except ValueError:
                value = float(text)  # 1e3; inf and nan fail below
                if not math.isfinite(value) or value != int(value):
                    raise ValueError from None
                return int(value)
        if isinstance(default, float):
            value = float(text)
            if not math.isfinite(value):
                raise FlagError(f"--{name}={text}: expected a finite number (default {default!r})")
            return value
    except ValueError:
        raise FlagError(f"--{name}={text}: expected {type(default).__name__} "
                        f"(default {default!r})") from None
    return text


SEED_MAX = 2**32 - 1  # NumPy's RandomState takes seeds 0 .. 2**32 - 1
COUNT_MAX = 2**31 - 1  # an int flag with a range: larger values overflow NumPy's and C's sizes


def check_ranges(values, *, positive=(), non_negative=(), fractions=(), typed=None):
    """Raise FlagError for the first of ``values`` (name -> value) outside its range: ``positive``
    names > 0, ``non_negative`` >= 0, ``fractions`` in [0, 1); a ``seed`` in 0 .. 2**32 - 1; the
    ints of ``positive`` and ``non_negative`` at most ``COUNT_MAX``. ``typed``: the text the user
    gave for a name, shown in the message."""
    def flag(name):
        return f"--{name}={(typed or {}).get(name, values[name])}"
    for name in (*positive, *non_negative):
        if isinstance(values[name], int) and values[name] > COUNT_MAX:
            raise FlagError(f"{flag(name)}: expected a number <= {COUNT_MAX}")
    for name in positive:
        if values[name] <= 0:
            raise FlagError(f"{flag(name)}: expected a number > 0")
    for name in non_negative:
        if values[name] < 0:
            raise FlagError(f"{flag(name)}: expected a number >= 0")
    for name in fractions:
        if not 0 <= values[name] < 1:
            raise FlagError(f"{flag(name)}: expected a number in [0, 1)")
    if "seed" in values and not 0 <= values["seed"] <= SEED_MAX:
        raise FlagError(f"{flag('seed')}: expected an integer in 0 .. {SEED_MAX}")


def output_problem(value, folder):
    """Why ``value`` cannot be written (one line), or None: a folder the script writes into
    (``folder``; made later if missing) or a file (written in its folder, made later if missing).
    A file is made and removed in the folder (and the missing folders made and removed again) to
    be sure: root ignores permissions, but not a read-only filesystem."""
    path = Path(value)
    if folder and path.exists() and not path.is_dir():
        return "a file, not a folder"
    if not folder:
        if path.is_dir():
            return "a folder, expected a file name"
        path = path.parent
    missing, above = [], path
    while not above.exists() and above != above.parent:
        missing.append(above)
        above = above.parent
    if not above.is_dir():
        return f"{above} is a file, not a folder"
    made = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
        probe = path / f".write_test.{os.getpid()}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        probe.unlink()
    except OSError as e:  # a folder that cannot be made, or the probe file in ``path``
        where = path if not e.filename or Path(e.filename).parent == path else e.filename
        return f"cannot write in {where}: {e.strerror or e}"
    finally:
        for d in reversed(made):
            d.rmdir()
    return None


def check_output(name, value, folder):
    """Raise FlagError unless ``--name=value`` can be written (``output_problem``), before any
    work. ``''`` is skipped (the script's default)."""
    problem = value and output_problem(value, folder)
    if problem:
        raise FlagError(f"--{name}={value}: {problem}")


def writable(name, value, folder):
    """``check_output`` for an output the script needs only in some modes: exits with one line
    (status 2) where ``--name=value`` cannot be written."""
    try:
        check_output(name, value, folder)
    except FlagError as e:
        fail(e)


def parse(defaults, argv, typed=None):
    """Parse ``argv`` (``--name=value`` or bare ``--flag`` for booleans) against ``defaults``.

    Returns the dict of overridden values (``typed``, a dict, receives the text of each). Raises
    FlagError on anything else.
    """
    out = {}
    for arg in argv:
        if not arg.startswith("--"):
            raise FlagError(f"{arg}: expected --name=value (known: {', '.join(defaults)})")
        name, eq, text = arg[2:].partition("=")
        if name not in defaults:
            raise FlagError(f"--{name}: unknown flag (known: {', '.join(defaults)})")
        default = defaults[name]
        if not eq and not isinstance(default, bool):
            raise FlagError(f"--{name}: expected --{name}=<{type(default).__name__}>")
        if eq and not text and isinstance(default, bool):  # an empty $VAR: not a yes
            raise FlagError(f"--{name}=: expected a boolean (true/false), or --{name} alone")
        out[name] = _coerce(name, default, text)
        if typed is not None:
            typed[name] = text
    return out


def usage(namespace, defaults):
    """The ``--help`` text: the script's first docstring line, then each flag with its default
    and the comment on its line of the hyperparameter block."""
    comments = {}
    path = namespace.get("__file__")
    try:
        source = Path(path).read_text().splitlines() if path else []
    except OSError:
        source = []
    for line in source:
        m = re.match(r"^(\w+)\s*=[^#]*#\s?(.*)$", line)
        if m and m.group(1) in defaults:
            comments.setdefault(m.group(1), m.group(2).strip())
    script = Path(path).name if path else "script"
    doc = (namespace.get("__doc__") or "").strip().split("\n\n")[0]  # its first paragraph
    lines = [f"usage: python {script} [--name=value ...]"] + doc.splitlines() + ["", "flags (default):"]
    shown = {n: f"--{n}={v}" for n, v in defaults.items()}
    width = max(map(len, shown.values()), default=0)
    lines += [f"  {shown[n]:<{width}}  {comments.get(n, '')}".rstrip() for n in defaults]
    return "\n".join(lines)


def configure(namespace, names, argv=None, folders=(), files=(), **ranges):
    """Apply command-line overrides to the module-level ``names`` of ``namespace`` (in place).

    Names from ``declared`` start from their declared values, so a second call (a test, an
    experiment calling ``main`` again) does not inherit the first one's flags.

    ``ranges``: ``check_ranges``'s keyword arguments; ``folders`` and ``files``: output flags for
    ``check_output``. Returns the resolved configuration (name -> value). On a bad flag prints
    one line to stderr and exits with status 2; nothing is changed.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    defaults = dict(overridable(namespace, names), **getattr(names, 'defaults', {}))
    if "--help" in argv or "-h" in argv:
        print(usage(namespace, defaults))
        raise SystemExit(0)
    try:
        typed = {}
        values = dict(defaults, **parse(defaults, argv, typed))
        check_ranges(values, typed=typed, **ranges)
        for name in folders:
            check_output(name, values[name], folder=True)
        for name in files:
            check_output(name, values[name], folder=False)
    except FlagError as e:
        fail(e)
    namespace.update(values)
    return values


def fail(message):
    """Print ``error: <message>`` (one line) to stderr and exit with status 2."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse`` with this module's convention, for the scripts that use argparse (bench/): a
    bad flag is one line, ``error: <message>``, and exit status 2 (argparse's own prints the
    usage and ``<prog>: error: ...``). Use the ``type=`` checks below for ranges."""

    def error(self, message):
        fail(message)


def _checked(kind, test, expected):
    """An argparse ``type=``: ``kind(text)``, refused (naming the text) unless finite and
    ``test``."""
    def check(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (kind is float and not math.isfinite(value)) or not test(value):
            raise argparse.ArgumentTypeError(f"{text!r}: expected {expected}")
        return value
    return check


positive_int = _checked(int, lambda v: 0 < v <= COUNT_MAX, "an integer > 0")
non_negative_int = _checked(int, lambda v: 0 <= v <= COUNT_MAX, "an integer >= 0")
positive_float = _checked(float, lambda v: v > 0, "a finite number > 0")
seed_int = _checked(int, lambda v: 0 <= v <= SEED_MAX, f"an integer in 0 .. {SEED_MAX}")


def output_file(text):
    """An argparse ``type=`` for a file the script writes: ``output_problem`` before any work."""
    problem = output_problem(text, folder=False)
    if problem:
        raise argparse.ArgumentTypeError(f"{text!r}: {problem}")
    return text


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM outside the training loop (``signum`` says which)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _interrupt(signum, frame):
    raise Interrupted(signum)


def interruption(e):
    """The ``KeyboardInterrupt`` that ``e`` is, or None.

    A signal handler's exception raised while a compiled function (Numba's dispatcher) is
    returning comes out as a ``SystemError`` ("returned a result with an exception set") whose
    cause is the interrupt: that one is an interruption too.
    """
    while isinstance(e, SystemError) and not isinstance(e, KeyboardInterrupt):
        e = e.__cause__ or e.__context__
    return e if isinstance(e, KeyboardInterrupt) else None


def command(main):
    """Run ``main()`` as a command. SIGINT and SIGTERM raise ``Interrupted`` (training catches
    them as a stop request; lib/train.py); one that reaches here prints one line and exits with
    128 + the signal's number: 130 after Ctrl-C, 143 after SIGTERM. A ``MemoryError`` (a count
    the machine cannot hold) is one ``error:`` line, exit status 2."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _interrupt)
    try:
        main()
    except BrokenPipeError:  # the reader went away (``| head``): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except MemoryError as e:  # a count too large for this machine (NumPy says how much)
        fail(f"out of memory: {e or 'an allocation failed'} (smaller counts or sizes?)")
    except (KeyboardInterrupt, SystemError) as e:
        interrupt = interruption(e)
        if interrupt is None:
            raise
        signum = getattr(interrupt, "signum", signal.SIGINT)
        print(f"\nstopped ({signal.Signals(signum).name})", file=sys.stderr)
        raise SystemExit(128 + signum) from None
    finally:  # exiting: one more Ctrl-C must not interrupt the interpreter's shutdown
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


class Declared(list):
    """A script's flag names (a list), with their declared values in ``defaults``."""

    def __init__(self, defaults):
        super().__init__(defaults)
        self.defaults = dict(defaults)


def declared(namespace, derived=(), also=()):
    """The flags of a script: the lower-case names of the int, float, str and bool globals of
    ``namespace`` so far (called right after the hyperparameter block, like nanoGPT's
    ``config_keys``; upper-case names are constants), less ``derived`` (values computed from
    others, such as ``nx``, or fixed ones), and ``also`` those upper-case names that are flags
    (``C``, the regularisation of the forget scripts). ``configure`` starts every call from these
    values."""
    return Declared({n: v for n, v in namespace.items() if isinstance(v, _TYPES)
                     and (n == n.lower() and not n.startswith('_') or n in also)
                     and n not in derived})
