"""Forgetting to draw windows (the paper's Fig. 6), on a trained bedroom model.

    python lsun/forget.py --boxes=windows.json [--model=...] [--out_dir=forget]

The paper's procedure (lib/forget.py): on the samples of a box file (lsun/boxes.py: windows
boxed on 150 generated bedrooms), a logistic regression on the generator's second-highest conv
layer (``layer`` h3: 16x16, ngf*2 maps) tells feature vectors inside the boxes from random places
outside them in the same image; every feature map with a positive weight is dropped (zeroed
through a mask on that layer of lsun/train_uncond_dcgan.py's own ``gen``) and the same z are
generated again; control: as many random maps dropped, ``n_random`` times.

Measured on the labelled samples, before and after: how much the pixels change inside the boxes
and outside them (dropping the window maps should change the windows, not the room). Writes
forget.png (rows: before, window maps dropped, random maps dropped) and forget.json.
"""
import json
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import DataError
from lib.files import atomic_write_text
from lib.forget import fit_logistic, keep_mask, location_samples, positive_maps, random_maps

from lsun import boxes as box_file

boxes = ''              # the box file (lsun/boxes.py)
model = ''              # the gen parameters; '' = the box file's "model"
layer = 'h3'            # gen's layer whose maps are dropped: h2 (8x8), h3 (16x16), h4 (32x32)
C = 1.0                 # inverse L2 strength of the regression
n_random = 5            # # of random drops of as many maps (the control)
n_show = 12             # # of samples in the figure (labelled ones with boxes first)
seed = 0                # seed of the negatives and the random drops
out_dir = 'forget'      # forget.png and forget.json go here
backend = 'c'           # c | numba | jax | pytorch | python

FLAGS = flags.declared(globals(), also=['C'])  # every value above is a --flag


def change(X0, X1, masks):
    """Mean absolute pixel change (in [0, 2] units) inside and outside the masks (n, h, w)."""
    d = np.abs(np.asarray(X1) - np.asarray(X0)).mean(axis=1)
    inside = float(d[masks].mean()) if masks.any() else None
    return dict(inside=inside, outside=float(d[~masks].mean()))


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['C', 'n_show'],
                             non_negative=['n_random'], folders=['out_dir'])
    try:
        if not boxes:
            raise DataError('--boxes: required (a box file of lsun/boxes.py)')
        if layer not in ('h2', 'h3', 'h4'):
            raise DataError(f"--layer={layer}: expected h2, h3 or h4 (gen's rectified conv layers)")
        record = box_file.read_boxes(boxes)
        if not any(im['boxes'] for im in record['images']):
            raise DataError(f'{boxes}: no sample has a box yet (add them with lsun/boxes.py '
                            f'--boxes={boxes} --index=I --add=x0,y0,x1,y1)')
        from lib.backend import get_mode, resolve_backend
        gen = box_file.Generator(model or record['model'],
                                 get_mode(resolve_backend(backend)), record['nbatch'])
    except DataError as e:
        flags.fail(e)
    z = box_file.samples_z(record['seed'], record['n'], gen.nz)
    gX_drop, mask = gen.with_mask(layer)
    H, X0 = gen.run(gen.compile([gen.layers[layer], gX_drop]), z)
    if X0.shape[-1] != record['size']:
        flags.fail(f'{boxes}: boxes are on {record["size"]} px samples, the model makes '
                   f'{X0.shape[-1]} px ones')
    idx, cells = box_file.box_masks(record, H.shape[-1])
    _, pixels = box_file.box_masks(record)
    rs = np.random.RandomState(seed)
    try:
        Xr, yr = location_samples(H[idx], cells, rs)
    except ValueError:
        flags.fail(f'{boxes}: no box covers half of a {H.shape[-1]}x{H.shape[-1]} cell of '
                   f'{layer}; nothing to learn from')
    coef, intercept, acc = fit_logistic(Xr, yr, C)
    drop = positive_maps(coef)
    n_maps = H.shape[1]
    _drop = gen.compile(gX_drop)

    def generate(kept):
        mask.set_value(kept)
        return gen.run(_drop, z)
    X1 = generate(keep_mask(n_maps, drop))
    randoms, X2 = [], None
    for _ in range(n_random):
        X = generate(keep_mask(n_maps, random_maps(n_maps, len(drop), rs)))
        randoms.append(change(X0[idx], X[idx], pixels))
        X2 = X if X2 is None else X2
    mask.set_value(keep_mask(n_maps, []))
    after = change(X0[idx], X1[idx], pixels)
    random_mean = ({k: float(np.mean([r[k] for r in randoms])) for k in ('inside', 'outside')}
                   if randoms and after['inside'] is not None else {})

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with_boxes = [im['index'] for im in record['images'] if im['boxes']]
    show = (with_boxes + [i for i in range(record['n']) if i not in with_boxes])[:n_show]
    rows = [X0[show], X1[show]] + ([X2[show]] if X2 is not None else [])
    from lib.vis import color_grid_vis
    color_grid_vis(np.concatenate([box_file.to_uint8(r) for r in rows]) / 255.,
                   (len(rows), len(show)), str(out / 'forget.png'))
    result = dict(experiment='forgetting windows (Fig. 6)', config=config, model=str(gen.path),
                  boxes=str(boxes), n_labelled=len(idx), n_with_boxes=len(with_boxes),
                  regression=dict(layer=layer, n_maps=n_maps, n_rows=len(yr),
                                  n_positive_rows=int(yr.sum()), train_accuracy=acc,
                                  intercept=intercept, n_dropped=len(drop),
                                  dropped=drop.tolist()),
                  change_after=after, change_random_mean=random_mean, change_random=randoms,
                  pictures=dict(forget=str(out / 'forget.png'), rows=['before', 'window maps '
                                'dropped', 'random maps dropped'][:len(rows)], samples=show),
                  paper=dict(claim='dropping the window maps removes most windows (or turns '
                                   'them into other objects) while the scene stays'))
    atomic_write_text(out / 'forget.json', json.dumps(result, indent=1) + '\n')
    print(f'dropped {len(drop)} of {n_maps} maps of {layer} (regression accuracy {acc:.2f}) | '
          f'change inside boxes {after["inside"]:.3f}, outside {after["outside"]:.3f} (random '
          f'drop: {random_mean.get("inside", float("nan")):.3f}, '
          f'{random_mean.get("outside", float("nan")):.3f}) | wrote {out / "forget.json"}, '
          f'{out / "forget.png"}')
    return result


if __name__ == '__main__':
    flags.command(main)
