"""What the discriminator's last conv layer responds to (the paper's Fig. 5), by guided backpropagation.

    python faces/dfeatures.py [--model=DIR] [--seed=0] [--out_dir=section6]

For each of the first ``n_features`` feature maps of D's last conv layer (h4, 4x4), the
``top_k`` of ``n_pool`` held-out real faces where the map responds most (its largest value over
the 4x4 positions); each is shown as the guided-backpropagation gradient of that one activation
with respect to the image (lib/guided.py: the rectifiers of the script's own ``discrim`` pass
back only positive gradients, where their input was positive). Once for the trained D, once for
a randomly initialised one (the script's ``init_params``, lib.rng seeded with ``seed``), as the
paper. D's batchnorm uses population statistics of the pool, so each image's gradient is its own.
Measures over the first ``n_measure`` maps, trained against random: how concentrated the
gradients are (share of the squared gradient in the top 5% of pixels), how alike each map's top
faces are (mean attribute-network feature distance among them over that of random pool pairs:
below 1 = the map picks out something), and how far each map's top faces lean to one rendered
attribute (largest gap between an attribute's rate among them and in the pool).
Writes dfeatures_trained.png, dfeatures_random.png (rows: maps, columns: top faces) and
dfeatures.json under ``out_dir``.
"""
from pathlib import Path

import numpy as np

from lib import flags
from lib.data_image import exit_on_data_error
from lib.guided import concentration, guided_views, mean_pair_distance, strongest, to_display
from faces import section6

model = section6.DEFAULT_MODEL  # models folder or <epoch>_gen_params file (its discrim beside it)
epoch = 0               # epoch of a models folder (0 = its latest)
n_pool = 1000           # # of held-out real faces searched for the strongest responses
n_features = 6          # # of feature maps shown (the paper: the first 6)
top_k = 8               # # of top faces per feature map
n_measure = 32          # # of feature maps measured
seed = 0                # seed of the random discriminator and of the random pairs
nbatch = 128            # # of images per discriminator call
out_dir = 'section6'    # dfeatures_{trained,random}.png and dfeatures.json go here
backend = 'c'           # c | numba | jax | pytorch | python

FLAGS = flags.declared(globals())  # every value above is a --flag


def measure(X, attrs, feats, act, grad, channels, k, rng, nbatch_=128):
    """Guided views (c, k, 3, 64, 64) and the measures of one discriminator (see the module doc)."""
    acts = np.concatenate([act(X[i:i + nbatch_]) for i in range(0, len(X), nbatch_)])
    imgs, rows, cols = strongest(acts, channels, k)
    views = np.stack([grad(X[imgs[j]], np.full(k, c), rows[j], cols[j])
                      for j, c in enumerate(channels)])
    pool_pairs = np.mean([mean_pair_distance(feats[rng.choice(len(X), k, replace=False)])
                          for _ in range(50)])
    alike = np.array([mean_pair_distance(feats[i]) for i in imgs]) / pool_pairs
    base = attrs.mean(0)
    lean = np.array([np.abs(attrs[i].mean(0) - base).max() for i in imgs])
    energy = concentration(views.reshape(-1, *views.shape[2:]))
    return views, dict(gradient_top5pct_energy=float(energy.mean()),
                       top_faces_distance_over_random=float(alike.mean()),
                       top_faces_attribute_lean=float(lean.mean()),
                       active_fraction=float(np.mean(acts > 0)),
                       top_images=imgs)


def main(argv=None):
    config = flags.configure(globals(), FLAGS, argv, positive=['n_features', 'n_measure', 'nbatch',
                                                            'n_pool', 'top_k'],
                             non_negative=['epoch'], folders=['out_dir'])
    from faces import attrnet, synthetic
    from lib.backend import get_mode, resolve_backend
    if n_pool < max(top_k, 2) or top_k < 2:
        flags.fail(f'--top_k={top_k}, --n_pool={n_pool}: expected 2 <= top_k <= n_pool')
    ep, gen_file, discrim_file = exit_on_data_error(section6.model_files, model, epoch)
    if discrim_file is None:
        flags.fail(f'--model={model}: no discriminator params beside {gen_file.name}')
    arrays = exit_on_data_error(section6.load_arrays, discrim_file, 'discrim')
    mode = get_mode(resolve_backend(backend))
    C = arrays[-1].shape[0] // 16
    channels = np.arange(min(max(n_features, n_measure), C))
    print(f'model: {discrim_file} (epoch {ep}, ndf={arrays[0].shape[0]}, last conv layer {C} maps) | '
          f'batchnorm: population statistics of {n_pool} held-out faces', flush=True)
    imgs, attrs_all = synthetic.render_range(attrnet.HELDOUT_SEED, 0, n_pool, 64)
    X = attrnet.transform(imgs)
    col = {n: i for i, n in enumerate(synthetic.ATTRIBUTE_NAMES)}
    attrs = attrs_all[:, [col[n] for n in attrnet.BINARY]]
    feats = attrnet.load(mode=mode).predict(X)['features']
    results, out = {}, Path(out_dir)
    pictures = {}
    for name, params in (('trained', arrays), ('random', section6.random_discrim_arrays(arrays, seed))):
        D = section6.Discriminator(params, mode, population=X, nbatch=nbatch)
        act, grad, n = guided_views(D.X, D.layers['h4'], mode)
        if n != 4:
            flags.fail(f"--model: found {n} rectifiers above D's last conv layer, expected 4")
        rng = np.random.RandomState(seed)
        views, m = measure(X, attrs, feats, act, grad, channels, top_k, rng, nbatch)
        results[name] = m
        shown = views[:n_features]
        pictures[name] = section6.save_grid(to_display(shown), len(shown), top_k,
                                            out / f'dfeatures_{name}.png')
        print(f'{name} D: gradient energy in top 5% pixels {m["gradient_top5pct_energy"]:.3f}, '
              f'top faces distance / random {m["top_faces_distance_over_random"]:.3f}, attribute '
              f'lean {m["top_faces_attribute_lean"]:.3f}', flush=True)
    record = dict(experiment="discriminator features (Fig. 5)", config=config,
                  model=dict(epoch=ep, discrim=str(discrim_file)), bn='population (D, over the pool)',
                  channels=channels, measured=results, pictures=pictures,
                  paper=dict(claim='the trained D\'s features respond to parts of the scene (beds, '
                                   'windows); a random D\'s show no semantic structure'))
    section6.write_json(record, out / 'dfeatures.json')
    print(f'wrote {out / "dfeatures.json"}, {pictures["trained"]}, {pictures["random"]}')
    return record


if __name__ == '__main__':
    flags.command(main)
