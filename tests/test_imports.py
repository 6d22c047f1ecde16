"""The project's import graph, read statically with ``ast``: no cycles, dependencies point down.

Every ``import`` and ``from ... import`` counts, at module level or inside a function: a lazy
import is still a dependency, and two modules that import each other lazily are still a cycle.

- No module reaches itself through its imports.
- ``lib/`` imports no dataset folder (faces, imagenet, svhn, mnist, lsun) and nothing of bench/.
- A dataset folder uses another only through ``lib/``.
- ``bench/`` takes from the dataset folders only their train scripts (the models it measures);
  helpers come through ``lib/``.
"""
import ast
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ('lib', 'faces', 'imagenet', 'svhn', 'mnist', 'lsun', 'bench')
DATASETS = ('faces', 'imagenet', 'svhn', 'mnist', 'lsun')


def project_modules():
    """{dotted name: path} of every .py file in the project's packages."""
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob('*.py')):
            parts = path.relative_to(ROOT).with_suffix('').parts
            if parts[-1] == '__init__':
                parts = parts[:-1]
            mods['.'.join(parts)] = path
    return mods


def resolve(name, mods):
    """The project module ``name`` refers to (itself, or the package above it), or None."""
    while name and name not in mods:
        name = name.rpartition('.')[0]
    return name or None


def imports_of(name, path, mods):
    """The project modules that module ``name`` (file ``path``) imports, anywhere in it."""
    is_pkg = path.name == '__init__.py'
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:  # relative: from the package holding this module
                pkg = name.split('.') if is_pkg else name.split('.')[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = '.'.join(pkg + ([base] if base else []))
            # ``from lib import flags`` names the module lib.flags; ``from lib.x import f`` lib.x
            targets = [f'{base}.{a.name}' for a in node.names] + [base]
            targets = [t for t in targets if t in mods] or [base]
        else:
            continue
        for t in targets:
            m = resolve(t, mods)
            if m is not None and m != name:
                out.add(m)
    return out


def graph():
    mods = project_modules()
    return {name: imports_of(name, path, mods) for name, path in mods.items()}


def cycles(g):
    """The strongly connected components of ``g`` with more than one module (Tarjan's)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(comp)

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def test_the_reader_sees_the_imports_it_should():
    """The graph builder itself, on imports known to be there (lazy ones included)."""
    g = graph()
    assert 'lib.data_hdf5' in g['faces.synthetic']             # from lib.data_hdf5 import H5Writer
    assert 'lib.flags' in g['faces.convert']                    # from lib import flags
    assert 'faces.synthetic' in g['faces.load']                 # inside resolve_path
    assert 'faces.train_uncond_dcgan' in g['bench.profile_step']  # import ... as model, in a function
    assert 'lib.data_folder' in g['faces.convert']              # from lib.data_folder import ...


def test_cycles_of_this_reader_are_found():
    assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [{'a', 'b', 'c'}]
    assert cycles({'a': {'b'}, 'b': set()}) == []


def test_no_import_cycles():
    found = cycles(graph())
    assert not found, f'import cycles: {[sorted(c) for c in found]}'


def test_lib_imports_no_dataset_folder():
    bad = {m: sorted(t for t in deps if t.split('.')[0] in DATASETS + ('bench',))
           for m, deps in graph().items() if m.split('.')[0] == 'lib'}
    assert not {m: d for m, d in bad.items() if d}


def test_dataset_folders_use_each_other_only_through_lib():
    bad = {}
    for m, deps in graph().items():
        top = m.split('.')[0]
        if top in DATASETS:
            other = sorted(t for t in deps if t.split('.')[0] in DATASETS + ('bench',)
                           and t.split('.')[0] != top)
            if other:
                bad[m] = other
    assert not bad


# what a benchmark may take from a dataset folder: the train scripts it times, and the LSUN
# loader and converter that bench/lsun_loader.py times
MEASURED = ('lsun', 'lsun.load', 'lsun.convert', 'lsun.scenes')


def test_bench_takes_only_what_it_measures_from_dataset_folders():
    bad = {}
    for m, deps in graph().items():
        if m.split('.')[0] == 'bench':
            other = sorted(t for t in deps if t.split('.')[0] in DATASETS
                           and not t.split('.')[-1].startswith('train_') and t not in MEASURED)
            if other:
                bad[m] = other
    assert not bad
