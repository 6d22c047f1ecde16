"""The paper's section-6 experiments: their measures on hand-computed cases, the guided gradient
against finite differences, and every command end to end on a tiny random model.

Hand-computed cases: a walk with a known jump (lib/latent.py through faces/walk.py), vector
arithmetic on a "model" whose attributes are signs of z (the answer is known), the turn measures on
made-up predictions, and a random drop against a targeted one on a constructed layer
(lib/forget.py).
"""
import json

import numpy as np
import pytensor
import pytensor.tensor as T
import pytest

from lib import activations, forget, latent
from lib.guided import guide, guided_rectify


# ------------------------------------------------------------------ guided backpropagation

def _fn(inputs, outputs):
    return pytensor.function(inputs, outputs, mode='FAST_COMPILE')


@pytest.mark.parametrize("leak", [0.2, 0.], ids=["leaky", "relu"])
def test_guided_rectify_forward_is_the_original_rectifier(leak):
    x = T.dvector('x')
    act = activations.LeakyRectify(leak) if leak else activations.Rectify()
    values = np.array([-2., -0.5, 0., 0.5, 3.])
    got, want = _fn([x], [guided_rectify(x, leak), act(x)])(values)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("leak", [0.2, 0.], ids=["leaky", "relu"])
def test_guided_gradient_by_hand(leak):
    """max(upstream, 0) times the slope: 1 above 0, the leak below, (1 + leak)/2 at 0."""
    x, c = T.dvector('x'), T.dvector('c')
    g = T.grad((c * guided_rectify(x, leak)).sum(), x)
    xs = np.array([-2., -1., 0., 1., 2., 0.])
    cs = np.array([3., -3., 2., 2., -1., -1.])
    expected = np.array([3. * leak, 0., 2. * (1 + leak) / 2, 2., 0., 0.])
    np.testing.assert_allclose(_fn([x, c], g)(xs, cs), expected)


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        d = np.zeros_like(x)
        d[i] = eps
        g[i] = (f(x + d) - f(x - d)) / (2 * eps)
    return g


def test_guided_gradient_of_a_conv_net_matches_finite_differences_where_defined():
    """With positive weights every upstream gradient is positive, so guided backpropagation is
    the true gradient: it must match central differences (inputs away from the kinks)."""
    from lib.ops import dnn_conv
    x, w = T.dtensor4('x'), T.dtensor4('w')
    h = activations.LeakyRectify()(dnn_conv(x, w, border_mode=(1, 1)))
    y = activations.Rectify()(dnn_conv(h, w, border_mode=(1, 1))).sum()
    guided, n = guide(y)
    assert n == 2
    r = np.random.default_rng(0)
    W = np.abs(r.normal(size=(2, 2, 3, 3)))
    X = r.normal(size=(1, 2, 4, 4))
    f = _fn([x, w], y)
    g = _fn([x, w], T.grad(guided, x))(X, W)
    np.testing.assert_allclose(g, _numeric_grad(lambda v: f(v, W), X), rtol=1e-5, atol=1e-7)
    # with mixed-sign weights guided backpropagation is no longer the gradient
    W2 = r.normal(size=(2, 2, 3, 3))
    g2 = _fn([x, w], T.grad(guided, x))(X, W2)
    assert not np.allclose(g2, _numeric_grad(lambda v: f(v, W2), X), atol=1e-3)
    assert _fn([x, w], guided)(X, W2) == pytest.approx(f(X, W2))   # the forward is unchanged


def test_guide_finds_every_rectifier_of_the_scripts_discrim():
    from lib import models64, rng
    rng.set_seed(0)
    _, dparams = models64.init_params(nz=100, ngf=2, ndf=2, nc=3)
    X = T.tensor4('X')
    D = models64.discrim(X, *dparams)
    guided, n = guide(D)
    assert n == 4
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 64, 64)).astype('float32')
    np.testing.assert_allclose(_fn([X], guided)(x), _fn([X], D)(x), rtol=1e-6)


# ------------------------------------------------------------------ walks (Fig. 4)

def _identity_model(z, progress=None):
    return np.asarray(z, np.float64)[:, :, None, None]


def test_strongest_and_concentration_by_hand():
    """``strongest``: per channel, the images with the largest response and its position;
    ``concentration``: the share of squared gradient in the top 5% of pixels."""
    from lib.guided import concentration, strongest
    acts = np.zeros((4, 3, 2, 2))
    acts[2, 0, 1, 0], acts[0, 0, 0, 1], acts[3, 0, 1, 1] = 5., 4., 1.
    acts[1, 2, 0, 0], acts[3, 2, 1, 1] = 2., 7.
    imgs, rows, cols = strongest(acts, np.array([0, 2]), 2)
    np.testing.assert_array_equal(imgs, [[2, 0], [3, 1]])
    np.testing.assert_array_equal(rows, [[1, 0], [1, 0]])
    np.testing.assert_array_equal(cols, [[0, 1], [1, 0]])
    g = np.ones((2, 1, 10, 10))
    g[1, 0, 0, :5] = 10.                          # 5 of 100 pixels hold 500 of 595
    np.testing.assert_allclose(concentration(g), [0.05, 500. / 595.])


def test_a_walk_with_a_known_jump_is_sharp_and_a_smooth_one_is_not():
    """Feature = z0, plus 10 once z0 passes 0.5. The walk 0 -> 1 in 9 steps moves 0.125 a step
    and jumps 10.125 once (over 3x its median 0.125); the walk 0 -> 0.4 never jumps."""
    from faces.walk import walks
    feature = lambda X: X[:, :1, 0, 0] + 10. * (X[:, :1, 0, 0] > 0.5)
    _, F = walks(_identity_model, feature, np.array([[0., 0.], [0., 0.]]),
                 np.array([[1., 0.], [0.4, 0.]]), 9)
    steps = latent.step_sizes(F)
    np.testing.assert_allclose(steps[0], [.125] * 4 + [10.125] + [.125] * 3)
    np.testing.assert_allclose(steps[1], [.05] * 8)
    assert list(latent.sharp_transitions(steps)) == [True, False]
    m = latent.walk_measures(F)
    assert m['sharp_fraction'] == 0.5
    assert m['max_over_median_max'] == pytest.approx(81.)
    assert m['step_max'] == pytest.approx(10.125)
    assert m['step_median'] == pytest.approx(0.0875)   # of 8 x 0.05, 7 x 0.125, 10.125


def test_memorisation_check_by_hand():
    from faces.walk import memorisation
    train = np.array([[0., 0.], [10., 0.]])
    heldout = np.array([[0., 3.], [10., 4.]])
    samples = np.array([[0., 1.], [10., 0.]])        # 1 and 0 from train; 2 and 4 from held-out
    m, idx = memorisation(samples, train, heldout)
    assert (m['nnd_train'], m['nnd_heldout']) == (0.5, 3.)
    assert m['closer_to_train_fraction'] == 1.
    assert list(idx) == [0, 1]


# ------------------------------------------------------------------ vector arithmetic (Fig. 7)

def _sign_attributes(X):
    """The 'attribute network' of the identity model: smiling, glasses, long hair = z0, z1, z2 > 0."""
    z = X[:, :, 0, 0]
    return dict(smiling=(z[:, 0] > 0) * 1., glasses=(z[:, 1] > 0) * 1., long_hair=(z[:, 2] > 0) * 1.)


def test_arithmetic_where_the_answer_is_known():
    """Pool z are +-1 in the attribute coordinates. Smiling long - neutral long + neutral short
    = (1 - -1 + -1, ., 1 - 1 + -1) = smiling short, also within +-0.25 of it (the neighbours);
    the third concept alone (neutral short) never is the target."""
    from faces.arithmetic import concepts, run_equation
    r = np.random.RandomState(0)
    z = np.concatenate([np.sign(r.uniform(-1, 1, (200, 3))), r.uniform(-0.1, 0.1, (200, 2))], 1)
    pools = concepts(_sign_attributes(_identity_model(z)), 'smiling', 'long_hair', 0.9)
    assert [len(p) for p in pools] == [np.sum((z[:, 0] > 0) & (z[:, 2] > 0)),
                                      np.sum((z[:, 0] < 0) & (z[:, 2] > 0)),
                                      np.sum((z[:, 0] < 0) & (z[:, 2] < 0))]
    m, X, picks = run_equation(z, pools, 'smiling', 'long_hair', 3, 100, r, _identity_model,
                               _sign_attributes)
    assert m['success'] == m['success_neighbours'] == m['success_single_exemplar'] == 1.
    assert m['success_baseline_third_concept'] == 0.
    assert X.shape == (100, 9, 5, 1, 1) and picks.shape == (100, 3, 3)
    a, b, c = (z[i].mean(0) for i in picks[0])
    np.testing.assert_allclose(X[0, 0, :, 0, 0], a - b + c)


def test_arithmetic_that_cannot_work_is_measured_as_failing():
    """No face of the pool wears glasses (z1 = -0.5 throughout): the 'glasses' equation's result
    has z1 = -0.5 + 0.5 - 0.5, so no draw, single or averaged, succeeds."""
    from faces.arithmetic import run_equation
    r = np.random.RandomState(1)
    z = np.stack([np.sign(r.uniform(-1, 1, 100)), np.full(100, -0.5),
                  np.sign(r.uniform(-1, 1, 100))], 1)
    pools = (np.flatnonzero(z[:, 2] > 0), np.flatnonzero(z[:, 2] > 0), np.flatnonzero(z[:, 2] < 0))
    m, _, _ = run_equation(z, pools, 'glasses', 'long_hair', 3, 20, r, _identity_model,
                           _sign_attributes, radius_=0.2)
    assert m['success'] == m['success_neighbours'] == m['success_single_exemplar'] == 0.
    assert m['context_changed'] == 1.       # the other half of the equation did work


# ------------------------------------------------------------------ turn vector (Fig. 8)

def test_direction_by_hand():
    z = np.array([[1., 0.], [3., 0.], [0., 2.], [5., 5.]])
    v, n_lo, n_hi = latent.direction(z, np.array([-0.9, -0.6, 0.8, 0.]), -0.5, 0.5)
    np.testing.assert_allclose(v, [2., -2.])
    assert (n_lo, n_hi) == (2, 1)
    with pytest.raises(ValueError):
        latent.direction(z, np.zeros(4), -0.5, 0.5)


def test_turn_measures_by_hand():
    """Walk 1 turns left linearly and keeps its attributes; walk 2 turns right and loses its
    glasses halfway."""
    from faces.turn import turn_measures
    s = np.linspace(-1, 1, 5)
    yaw = np.concatenate([-0.5 * s, [0., 0.1, 0.3, 0.35, 0.9]])
    pred = dict(yaw=yaw, smiling=np.ones(10), long_hair=np.zeros(10), hair=np.full(10, 2),
                glasses=np.array([0.] * 5 + [1., 1., 1., 0., 0.]))
    m = turn_measures(s, pred, 2, 5)
    assert m['spearman_median'] == pytest.approx(0.)
    np.testing.assert_allclose(m['spearman_per_walk'], [-1., 1.])
    assert m['monotone_left_fraction'] == 0.5
    assert m['attribute_stable_fraction'] == dict(smiling=1., glasses=.5, long_hair=1., hair=1.)
    assert m['all_attributes_stable_fraction'] == 0.5
    assert m['yaw_first_mean'] == pytest.approx(0.25)


# ------------------------------------------------------------------ forgetting (Fig. 6)

def _constructed_layer(seed=0, n=60, n_maps=8):
    """Maps 0 and 1 light up (5) over the object (the top-left 2x2 of half the images); every
    map carries noise in [0, 1]."""
    r = np.random.RandomState(seed)
    H = r.uniform(0., 1., (n, n_maps, 4, 4))
    masks = np.zeros((n, 4, 4), bool)
    masks[::2, :2, :2] = True
    H[:, :2][np.repeat(masks[:, None], 2, axis=1)] += 5.
    return H, masks


def _object_seen(H, masks):
    """An image shows the object where map 0 or map 1 averages over 2 inside its mask."""
    inside = [(H[i, :2][:, masks[i]]).mean(1).max() > 2. for i in range(len(H)) if masks[i].any()]
    return float(np.mean(inside))


def test_a_targeted_drop_forgets_the_object_and_a_random_one_mostly_does_not():
    H, masks = _constructed_layer()
    r = np.random.RandomState(0)
    X, y = forget.location_samples(H, masks, r)
    assert y.sum() == 30 * 4 and len(y) == 2 * 30 * 4     # positives, and as many negatives
    coef, _, acc = forget.fit_logistic(X, y)
    drop = forget.positive_maps(coef)
    assert acc == 1. and {0, 1} <= set(drop)
    k = len(drop)
    assert _object_seen(H, masks) == 1.
    assert _object_seen(H * forget.keep_mask(8, drop)[None, :, None, None], masks) == 0.
    # a random drop of k of 8 maps removes both object maps with probability k(k-1) / (8 * 7)
    seen = [_object_seen(H * forget.keep_mask(8, forget.random_maps(8, k, r))[None, :, None, None],
                         masks) for _ in range(400)]
    assert np.mean(seen) == pytest.approx(1. - k * (k - 1) / 56., abs=0.06)


def test_location_samples_negatives_come_from_the_same_images():
    H = np.arange(2 * 1 * 2 * 2, dtype=float).reshape(2, 1, 2, 2)
    masks = np.array([[[True, False], [False, False]], [[False, False], [False, False]]])
    X, y = forget.location_samples(H, masks, np.random.RandomState(0))
    assert list(y) == [1, 0] and X[0, 0] == 0. and X[1, 0] in (1., 2., 3.)


def test_resample_by_hand():
    m = np.arange(16.).reshape(1, 4, 4)
    np.testing.assert_array_equal(forget.resample(m, 2), [[[2.5, 4.5], [10.5, 12.5]]])
    np.testing.assert_array_equal(forget.resample(m[:, :2, :2], 4)[0, :2, :2], [[0., 0.], [0., 0.]])


def test_glasses_masks_do_not_change_the_faces():
    from faces import synthetic
    imgs, attrs = synthetic.render_range(2, 0, 12)
    imgs2, attrs2, masks = synthetic.render_range(2, 0, 12, glasses_masks=True)
    np.testing.assert_array_equal(imgs, imgs2)
    glasses = attrs[:, synthetic.ATTRIBUTE_NAMES.index('glasses')] > 0.5
    assert glasses.any() and not glasses.all()
    assert (masks[glasses].sum((1, 2)) > 10).all() and (masks[~glasses] == 0).all()


# ------------------------------------------------------------------ the commands on a tiny model

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random generator (ngf=4, nz=16) and discriminator (ndf=4), and 60 synthetic training faces."""
    from faces import synthetic
    from lib import models64, rng
    from lib.params import save_params
    root = tmp_path_factory.mktemp("section6")
    mp = pytest.MonkeyPatch()
    mp.setenv("DCGAN_DATA_DIR", str(root / "data"))
    rng.set_seed(0)
    gen_params, discrim_params = models64.init_params(nz=16, ngf=4, ndf=4, nc=3)
    models = root / "run" / "models" / "uncond_dcgan"
    models.mkdir(parents=True)
    save_params(gen_params, models / "3_gen_params.npz")
    save_params(discrim_params, models / "3_discrim_params.npz")
    data = synthetic.generate(n=60, seed=5, out=root / "faces.hdf5", workers=1, progress=False)
    yield dict(models=models, data=data, root=root)
    mp.undo()


COMMON = ["--backend=c", "--n_population=64", "--nbatch=32"]


def _main(name, argv):
    """``faces.<name>.main(argv)``, its module-level flags restored afterwards."""
    import importlib
    cli = importlib.import_module(f"faces.{name}")
    saved = {n: getattr(cli, n) for n in cli.FLAGS}
    try:
        return cli.main(argv)
    finally:
        for n, v in saved.items():
            setattr(cli, n, v)


def test_walk_command(tiny):
    out = tiny["root"] / "walk"
    _main("walk", [f"--model={tiny['models']}", f"--data={tiny['data']}", "--n_walks=4", "--rows=2",
               "--n_mem=10", "--n_ref=20", "--n_show=3", f"--out_dir={out}"] + COMMON)
    r = json.loads((out / "walk.json").read_text())
    assert r["bn"] == "population" and r["model"]["epoch"] == 3
    assert r["walks"]["n_walks"] == 4 and 0. <= r["walks"]["sharp_fraction"] <= 1.
    assert r["memorisation"]["n_reference"] == 6     # the file's test split is 10% of 60
    assert (out / "walk.png").is_file() and (out / "walk_nearest.png").is_file()


def test_arithmetic_command_is_deterministic(tiny):
    records = []
    for i in range(2):
        out = tiny["root"] / f"arith{i}"
        _main("arithmetic", [f"--model={tiny['models']}", "--n_pool=64", "--n_draws=3", "--k=1",
                         "--confident=0.51", "--bn=batch", f"--out_dir={out}"] + COMMON)
        records.append(json.loads((out / "arithmetic.json").read_text()))
    a, b = records
    assert a["equations"] == b["equations"] and a["bn"] == "batch"
    for eq in a["equations"].values():
        assert "skipped" in eq or 0. <= eq["success"] <= 1.


def test_turn_command(tiny):
    out = tiny["root"] / "turn"
    argv = [f"--model={tiny['models']}", "--n_pool=64", "--n_walks=3", "--steps=4", "--rows=2",
            "--yaw_threshold=0", f"--out_dir={out}"] + COMMON
    _main("turn", argv)
    r = json.loads((out / "turn.json").read_text())
    assert len(r["walks"]["spearman_per_walk"]) == 3 and (out / "turn.png").is_file()


def test_forget_command(tiny):
    out = tiny["root"] / "forget"
    # a random model draws no glasses: the low box threshold gives the regression boxes anyway
    # (this checks the command's path, not its numbers)
    _main("forget", [f"--model={tiny['models']}", "--n_detector=40", "--n_fit=64", "--n_eval=16",
                     "--n_random=2", "--n_show=4", "--box_threshold=1e-5", f"--out_dir={out}"] + COMMON)
    r = json.loads((out / "forget.json").read_text())
    assert r["regression"]["n_maps"] == 8 and len(r["random"]) == 2
    for key in ("glasses", "smiling", "fd"):
        assert key in r["before"] and key in r["after"] and key in r["random_mean"]
    assert np.isfinite(r["before"]["fd"]) and np.isfinite(r["after"]["fd"])


def test_dfeatures_command(tiny):
    out = tiny["root"] / "dfeatures"
    _main("dfeatures", [f"--model={tiny['models']}", "--n_pool=24", "--n_features=2", "--top_k=3",
                    "--n_measure=4", "--backend=c", f"--out_dir={out}"])
    r = json.loads((out / "dfeatures.json").read_text())
    assert set(r["measured"]) == {"trained", "random"}
    assert np.shape(r["measured"]["trained"]["top_images"]) == (4, 3)
    assert (out / "dfeatures_trained.png").is_file() and (out / "dfeatures_random.png").is_file()


@pytest.mark.parametrize("module, argv, message", [
    ("walk", ["--model=/nonexistent"], "--model=/nonexistent: no such file or folder"),
    ("arithmetic", ["--model=/nonexistent"], "--model=/nonexistent: no such file or folder"),
    ("turn", ["--model=/nonexistent"], "--model=/nonexistent: no such file or folder"),
    ("forget", ["--model=/nonexistent"], "--model=/nonexistent: no such file or folder"),
    ("dfeatures", ["--model=/nonexistent"], "--model=/nonexistent: no such file or folder"),
    ("arithmetic", ["--model=MODELS", "--equations=smiling:smiling"], "--equations=smiling:smiling"),
    ("walk", ["--model=MODELS", "--bn=running"], "--bn=running: expected 'batch' or 'population'"),
    ("forget", ["--model=MODELS", "--layer=h"], "--layer=h: expected h2, h3 or h4"),
    ("walk", ["--model=MODELS", "--epoch=7"], "--epoch=7: no gen params for it"),
    ("walk", ["--steps=abc"], "--steps=abc: expected int"),
])
def test_bad_input_is_one_line(tiny, capsys, module, argv, message):
    argv = [a.replace("MODELS", str(tiny["models"])) for a in argv]
    with pytest.raises(SystemExit) as e:
        _main(module, argv + ["--backend=c"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and message in err, err


def test_dropping_every_map_of_a_layer_leaves_no_trace_of_z(tiny):
    """Through the script's own gen with population statistics: no map dropped gives the
    samples; every map of h3 dropped gives one image for every z (nothing of z reaches h4)."""
    import faces.train_uncond_dcgan as script
    from faces import section6
    from lib.backend import get_mode
    widths = (script.nz, script.ngf, script.nc)
    arrays = section6.load_arrays(tiny["models"] / "3_gen_params.npz", "gen")
    G = section6.Generator(arrays, get_mode("c"), "population", 64, 32)
    assert (script.nz, script.ngf, script.nc) == widths          # the script's globals untouched
    assert set(G.layers) == {"h", "h2", "h3", "h4"} and G.layers["h"].ndim == 2
    gX, mask = G.drop("h3")
    f = G.compile(gX)
    z = np.random.RandomState(0).uniform(-1, 1, (5, 16)).astype("float32")
    np.testing.assert_allclose(f(z), G.sample(z), rtol=1e-6, atol=1e-6)
    mask.set_value(np.zeros(8, np.float32))
    X = f(z)
    np.testing.assert_allclose(X, np.repeat(X[:1], 5, axis=0), atol=1e-6)
    assert not np.allclose(G.sample(z)[0], G.sample(z)[1])
