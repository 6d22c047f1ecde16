"""Command-line overrides of a script's module-level hyperparameters (``--name=value``).

Like nanoGPT's configurator: every module-level int/float/str/bool the script declares in its
hyperparameter block can be overridden; values are coerced to the default's type; an unknown key
or a value of the wrong type is a one-line error (exit status 2). ``--help`` (or ``-h``) lists
the flags with their defaults and the comments of the hyperparameter block.
"""
import re
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
            value = float(text)
            if value != int(value):
                raise ValueError
            return int(value)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise FlagError(f"--{name}={text}: expected {type(default).__name__} "
                        f"(default {default!r})") from None
    return text


def parse(defaults, argv):
    """Parse ``argv`` (``--name=value`` or bare ``--flag`` for booleans) against ``defaults``.

    Returns the dict of overridden values. Raises FlagError on anything else.
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
        out[name] = _coerce(name, default, text)
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
    doc = (namespace.get("__doc__") or "").strip().splitlines()
    lines = [f"usage: python {script} [--name=value ...]"] + doc[:1] + ["", "flags (default):"]
    shown = {n: f"--{n}={v}" for n, v in defaults.items()}
    width = max(map(len, shown.values()), default=0)
    lines += [f"  {shown[n]:<{width}}  {comments.get(n, '')}".rstrip() for n in defaults]
    return "\n".join(lines)


def configure(namespace, names, argv=None):
    """Apply command-line overrides to the module-level ``names`` of ``namespace`` (in place).

    Returns the resolved configuration (name -> value). On a bad flag prints one line to stderr
    and exits with status 2.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    defaults = overridable(namespace, names)
    if "--help" in argv or "-h" in argv:
        print(usage(namespace, defaults))
        raise SystemExit(0)
    try:
        namespace.update(parse(defaults, argv))
    except FlagError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)
    return {n: namespace[n] for n in defaults}
