"""The paper's de-duplication of LSUN bedrooms (section 4.1.1): an autoencoder's binary codes.

    python lsun/dedup.py --data=PATH/bedroom_train_lmdb [--out=FILE]   # write the drop list
    python lsun/dedup.py --measure [--n_distinct=2000 --n_copies=300]   # precision / recall

"We fit a 3072-128-3072 de-noising dropout regularized RELU autoencoder on 32x32 downsampled
center-crops of training examples. The resulting code layer activations are then binarized via
thresholding the ReLU activation ... and provides a convenient form of semantic-hashing, allowing
for linear time de-duplication." Here: every image is read once at 32x32 (lsun/load.py's min-side
resize and center crop), the autoencoder (input corrupted by dropout, dropout on the code, ReLU
code, linear reconstruction, squared error; lib/ on PyTensor, the original Adam) is trained on
them, each image's 128 code units are thresholded into 128 bits, and images whose bits are equal
are one group: the first of each group (in the database's key order) is kept, the others are
written to the drop list (lsun/load.py's key-list format), which the loader and
lsun/train_uncond_dcgan.py's --drop honour. The paper reports about 275,000 near duplicates
removed from the 3M bedrooms.

``--measure`` checks it where the answer is known: ``n_distinct`` distinct synthetic bedrooms
(lsun/scenes.py) and ``n_copies`` near-duplicate copies of some of them (re-encoded as JPEG,
cropped by a few pixels, colour-shifted; ``copy_variant``), written as an LSUN-format database and
de-duplicated by the same code. Pair precision: of the pairs of images in one group, the fraction
that are an image and its copy (or two copies of one image); pair recall: of those true pairs, the
fraction found. Also the time of each stage per million images. Writes dedup_measure.json.
"""
import json
import sys
import time
from pathlib import Path

import numpy as np

import pytensor
import pytensor.tensor as T

from lib import activations, flags, inits, rng, updates
from lib.backend import get_mode, resolve_backend
from lib.data_image import DataError
from lib.ops import dropout
from lib.theano_utils import floatX, sharedX

from lsun import load

npx = 32          # # of pixels width/height of the downsampled center crops
nc = 3            # # of channels in image
nx = npx*npx*nc   # # of dimensions in X (3072)
nh = 128          # # of code units
p_in = 0.2        # input dropout (the denoising corruption; the paper gives no value)
p_code = 0.5      # dropout on the code units during training (the paper gives no value)
threshold = 0.    # a code bit is on where the ReLU activation is above this
nbatch = 128      # # of examples in batch
niter = 1         # # of passes over the training images
lr = 0.001        # learning rate for adam
ntrain = 1000000  # # of images the autoencoder is trained on (the first ones; all are hashed)

# run options
data = ''               # LSUN's LMDB folder (required unless --measure)
out = ''                # the drop list; '' = <data_dir>/lsun/<name>.drop.txt (--drop=auto finds it)
cache = ''              # 32x32 crops cached as .npy (the 3M: 9.2 GB); '' = in memory, 'none' = off
measure = False         # measure precision / recall on injected near duplicates instead
n_distinct = 2000       # --measure: # of distinct synthetic bedrooms
n_copies = 300          # --measure: # of near-duplicate copies injected
out_dir = 'dedup_measure'  # --measure: the database and dedup_measure.json go here
seed = 0                # seed of lib.rng (weights, dropout, order) and of the measure's images
backend = ''            # c | numba | jax | pytorch | python; '' = the default for analysis

FLAGS = flags.declared(globals(), derived=['nc', 'nx'])  # every value above is a --flag

relu = activations.Rectify()
ifn = inits.Normal(scale=0.02)
bias_ifn = inits.Constant(c=0.)


def init_params():
    """The autoencoder's parameters [w, b, w2, b2], drawn from lib.rng."""
    w = ifn((nx, nh), 'w')
    b = bias_ifn((nh,), 'b')
    w2 = ifn((nh, nx), 'w2')
    b2 = bias_ifn((nx,), 'b2')
    return [w, b, w2, b2]


def code(X, w, b, w2, b2):
    return relu(T.dot(X, w) + b)                           # (n, nh)


def autoencoder(X, w, b, w2, b2):
    h = code(dropout(X, p_in), w, b, w2, b2)               # (n, nh): corrupted input, ReLU code
    return T.dot(dropout(h, p_code), w2) + b2              # (n, nx): linear reconstruction


def build(params, mode):
    """(_train, _code): one Adam step on a batch (returns its squared error), and the codes."""
    X = T.matrix()
    cost = T.sqr(autoencoder(X, *params) - X).sum(axis=1).mean()
    updater = updates.Adam(lr=sharedX(lr))
    # PORT: PyTensor's random stream advances through explicit updates (lib/ops.dropout)
    _train = pytensor.function([X], cost, updates=updater(params, cost) + rng.t_rng.updates(),
                               mode=mode)
    _code = pytensor.function([X], code(X, *params), mode=mode)
    return _train, _code


def transform(X):
    return floatX(X).reshape(len(X), -1)/127.5 - 1.


def read_crops(d, cache_path=None, progress=True):
    """Every image of ``d`` (an ``LSUN`` at 32 px) as uint8 (n, 32, 32, 3), and ``ok`` (n,) bool:
    False where the entry did not decode (those are never grouped). ``cache_path``: an .npy file
    the crops are written to (and read from, when it holds ``len(d)`` of them)."""
    from tqdm import tqdm
    n = len(d)
    ok_path = None if cache_path is None else Path(str(cache_path) + '.ok.npy')
    if cache_path is not None and Path(cache_path).is_file() and ok_path.is_file():
        X = np.load(cache_path, mmap_mode='r')
        ok = np.load(ok_path)
        if len(X) == n == len(ok):
            return X, ok
    if cache_path is None:
        X = np.zeros((n, d.npx, d.npx, 3), np.uint8)
    else:
        Path(cache_path).parent.mkdir(parents=True, exist_ok=True)
        X = np.lib.format.open_memmap(cache_path, 'w+', np.uint8, (n, d.npx, d.npx, 3))
    ok = np.zeros(n, bool)
    bar = tqdm(total=n, desc='reading 32x32 crops', file=sys.stderr, disable=not progress,
               leave=False)
    for i in range(0, n, 1024):
        x, good = d.get(np.arange(i, min(i + 1024, n)), with_ok=True)
        X[i:i + len(good)][good] = x
        ok[i:i + len(good)] = good
        bar.update(len(good))
    bar.close()
    if cache_path is not None:
        X.flush()
        np.save(ok_path, ok)
    return X, ok


def train_autoencoder(X, ok, mode, progress=True):
    """Train the autoencoder on the first ``ntrain`` decodable crops; returns (_code, costs)."""
    from tqdm import tqdm
    params = init_params()
    _train, _code = build(params, mode)
    idx = np.flatnonzero(ok)[:ntrain]
    costs = []
    for epoch in range(niter):
        order = idx[rng.np_rng.permutation(len(idx))]
        bar = tqdm(range(0, len(order), nbatch), desc=f'autoencoder epoch {epoch + 1}/{niter}',
                   file=sys.stderr, disable=not progress, leave=False)
        for i in bar:
            costs.append(float(_train(transform(X[np.sort(order[i:i + nbatch])]))))
        bar.close()
        if costs and not np.isfinite(costs[-1]):  # NaN codes would drop nothing, or everything
            raise DataError(f'--lr={lr}: the autoencoder\'s cost is {costs[-1]} after '
                            f'{len(costs)} updates (diverged): no drop list or measure written')
    return _code, costs


def hash_codes(_code, X, ok, nblock=1024):
    """Packed code bits (n, nh/8) uint8 of the crops; rows of undecodable entries are zero."""
    bits = np.zeros((len(X), (nh + 7) // 8), np.uint8)
    for i in range(0, len(X), nblock):
        h = np.asarray(_code(transform(X[i:i + nblock])))
        bits[i:i + nblock] = np.packbits(h > threshold, axis=1)
    bits[~ok] = 0
    return bits


def collisions(bits, ok):
    """Groups of indices (sorted, size > 1) of decodable images with equal codes."""
    idx = np.flatnonzero(ok)
    rows = np.ascontiguousarray(bits[idx]).view(np.dtype((np.void, bits.shape[1]))).ravel()
    _, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind='stable')
    bounds = np.cumsum(counts)[:-1]
    return [idx[g] for g in np.split(order, bounds) if len(g) > 1]


def drop_indices(groups):
    """All but the first image of each group, sorted."""
    return np.sort(np.concatenate([g[1:] for g in groups])) if groups else np.zeros(0, int)


def dedup(path, cache_path=None, mode=None, progress=True):
    """De-duplicate the LSUN database ``path``: (d, groups, drop indices, timings in seconds)."""
    t = {}
    t0 = time.time()
    d = load.LSUN(path, npx=npx)
    t['index'] = time.time() - t0
    t0 = time.time()
    X, ok = read_crops(d, cache_path, progress)
    t['read'] = time.time() - t0
    t0 = time.time()
    _code, costs = train_autoencoder(X, ok, mode, progress)
    t['train'] = time.time() - t0
    t0 = time.time()
    bits = hash_codes(_code, X, ok)
    t['hash'] = time.time() - t0
    t0 = time.time()
    groups = collisions(bits, ok)
    t['group'] = time.time() - t0
    bits_on = np.unpackbits(bits[ok], axis=1)[:, :nh]
    stats = dict(n=len(d), n_undecodable=int((~ok).sum()), n_trained=int(min(ntrain, ok.sum())),
                 final_cost=float(np.mean(costs[-20:])) if costs else None,
                 n_distinct_codes=int(ok.sum()) - sum(len(g) - 1 for g in groups),
                 mean_bits_on=float(bits_on.sum(1).mean()) if len(bits_on) else 0.,
                 n_dead_units=int((bits_on.sum(0) == 0).sum()) if len(bits_on) else nh)
    return d, groups, drop_indices(groups), t, stats


# ------------------------------------------------------------------------------------------
# --measure: injected near duplicates
# ------------------------------------------------------------------------------------------

def copy_variant(img, rs):
    """A near duplicate of uint8 ``img`` (h, w, 3) as LSUN would hold it, and what was done:
    0 to 3 % of each side cropped (at least up to 2 px), every pixel shifted by up to 4 levels
    per channel, then JPEG at quality 70 to 95 (the original is stored as WebP)."""
    h, w = img.shape[:2]
    t, l = rs.randint(0, max(2, h * 3 // 100) + 1), rs.randint(0, max(2, w * 3 // 100) + 1)
    b, r = rs.randint(0, max(2, h * 3 // 100) + 1), rs.randint(0, max(2, w * 3 // 100) + 1)
    shift = rs.randint(-4, 5, 3)
    x = np.clip(img[t:h - b, l:w - r].astype(np.int16) + shift, 0, 255).astype(np.uint8)
    q = int(rs.randint(70, 96))
    return load.encode(x, 'jpeg', quality=q), dict(crop=[int(t), int(l), int(b), int(r)],
                                                   shift=shift.tolist(), jpeg_quality=q)


def make_measure_db(path, n_distinct, n_copies, seed=0, progress=True):
    """An LSUN-format database of ``n_distinct`` synthetic bedrooms (WebP) and ``n_copies``
    near-duplicate copies of randomly chosen ones (JPEG), under random 40-hex-digit keys.
    Returns {key: family} (the index of the distinct image each entry shows)."""
    from tqdm import tqdm
    from lsun.scenes import room
    rs = np.random.RandomState(seed)
    sources = rs.choice(n_distinct, n_copies, replace=True)
    family, items = {}, []
    copies = {}
    for s in sources:
        copies.setdefault(int(s), []).append(None)
    for i in tqdm(range(n_distinct), desc='synthetic bedrooms', file=sys.stderr,
                  disable=not progress, leave=False):
        img, _ = room(seed * 1_000_003 + i)
        for j in range(1 + len(copies.get(i, []))):
            value = load.encode(img, 'webp', quality=80) if j == 0 else copy_variant(img, rs)[0]
            key = '%040x' % rs.randint(0, 1 << 62, dtype=np.int64)
            key = key.encode()
            family[key] = i
            items.append((key, value))
    load.write_lmdb(path, items, map_size=max(1 << 26, 64 * 1024 * len(items)))
    return family


def pair_scores(groups, keys, family):
    """Pair precision and recall of ``groups`` (index arrays into ``keys``) against ``family``."""
    from collections import Counter
    found = true_found = 0
    for g in groups:
        fams = Counter(family[keys[i]] for i in g)
        found += len(g) * (len(g) - 1) // 2
        true_found += sum(c * (c - 1) // 2 for c in fams.values())
    sizes = Counter(family.values())
    true_pairs = sum(c * (c - 1) // 2 for c in sizes.values())
    return dict(pairs_found=found, true_pairs_found=true_found, true_pairs=true_pairs,
                precision=true_found / found if found else None,
                recall=true_found / true_pairs if true_pairs else None)


def drop_scores(drop, keys, family):
    """Of the dropped images: how many show an image that is kept (a right drop); of the
    copies that should go (family size - 1 each), how many went."""
    dropped = set(drop.tolist())
    kept = set(family[k] for i, k in enumerate(keys) if i not in dropped)
    right = sum(family[keys[i]] in kept for i in drop)
    from collections import Counter
    should = sum(c - 1 for c in Counter(family.values()).values())
    return dict(dropped=int(len(drop)), right_drops=int(right), should_drop=int(should),
                drop_precision=right / len(drop) if len(drop) else None,
                drop_recall=right / should if should else None)


def run_measure(mode, progress=True):
    out = Path(out_dir)
    db = out / 'lsun_measure_lmdb'
    if db.exists():
        import shutil
        shutil.rmtree(db)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    family = make_measure_db(db, n_distinct, n_copies, seed, progress)
    t_make = time.time() - t0
    d, groups, drop, t, stats = dedup(db, mode=mode, progress=progress)
    keys = list(d.keys)
    d.close()
    n = len(keys)
    per_million = {k: v / n * 1e6 for k, v in t.items()}
    per_million['train_per_pass'] = t['train'] / max(1, niter) / max(1, stats['n_trained']) * 1e6
    record = dict(experiment='de-duplication on injected near duplicates (section 4.1.1)',
                  config={k: globals()[k] for k in FLAGS}, n_images=n, stats=stats,
                  **pair_scores(groups, keys, family), **drop_scores(drop, keys, family),
                  n_groups=len(groups), seconds=dict(t, make_database=t_make),
                  seconds_per_million=per_million)
    from lib.files import atomic_write_text
    atomic_write_text(out / 'dedup_measure.json', json.dumps(record, indent=1) + '\n')
    return record


def main(argv=None):
    flags.configure(globals(), FLAGS, argv, positive=['npx', 'nh', 'nbatch', 'niter', 'lr',
                                                      'ntrain', 'n_distinct'],
                    non_negative=['n_copies', 'threshold'], fractions=['p_in', 'p_code'])
    global nx
    nx = npx*npx*nc
    if not measure and not data:
        flags.fail(f'--data: required (or --measure). {load.WHERE}')
    if measure:
        flags.writable('out_dir', out_dir, folder=True)
    else:
        flags.writable('out', out, folder=False)
        if cache not in ('', 'none'):
            flags.writable('cache', cache, folder=False)
    mode = get_mode(resolve_backend(backend, task='other'))
    rng.set_seed(seed)
    try:
        if measure:
            r = run_measure(mode)
            print(f'{r["n_images"]} images ({n_distinct} distinct + {n_copies} near-duplicate '
                  f'copies): pair precision {r["precision"]}, recall {r["recall"]}; dropped '
                  f'{r["dropped"]} ({r["right_drops"]} right, {r["should_drop"]} to drop) | '
                  f'seconds per million images: '
                  + ', '.join(f'{k} {v:.0f}' for k, v in r['seconds_per_million'].items())
                  + f' | wrote {Path(out_dir) / "dedup_measure.json"}')
            return r
        out_path = Path(out) if out else load.default_drop_path(data)
        cache_path = None if cache in ('', 'none') else Path(cache)
        d, groups, drop, t, stats = dedup(data, cache_path, mode)
        keys = d.keys[drop]
        out_path.parent.mkdir(parents=True, exist_ok=True)
        load.write_keys(out_path, keys, header=[
            f'lsun/dedup.py near duplicates of {Path(data).resolve()}: {len(drop)} of {len(d)} '
            f'images in {len(groups)} groups of equal {nh}-bit autoencoder codes',
            'one key per line; lsun/load.py leaves them out (--drop)'])
        d.close()
        print(f'{len(drop)} near duplicates of {len(d)} images ({len(groups)} groups, '
              f'{stats["n_undecodable"]} undecodable) | {sum(t.values()):.0f} s | wrote {out_path}')
        return dict(stats, n_drop=len(drop), out=str(out_path))
    except DataError as e:
        flags.fail(e)


if __name__ == '__main__':
    flags.command(main)
