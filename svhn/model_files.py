"""The SVHN DCGAN's parameter files: the original's released .jl and this port's .npz.

Both live at ``<model_dir>/<epoch>_{gen,discrim}_params.{npz,jl}``: the original's
``models/svhn_unsup_all_conv_dcgan_100z_gaussian_lr_0.0005_64mb/200_*_params.jl`` (put them in
the repo's ``models/`` folder) and what svhn/train_uncond_dcgan.py writes. Loaded arrays are
checked against the architecture of svhn/train_uncond_dcgan.py, parameter by parameter.
"""
from pathlib import Path

from lib import rng
from lib.data_image import DataError
from lib.params import check_shapes, load_params
from lib.params import params_path as lib_params_path
from lib.theano_utils import floatX

import svhn.train_uncond_dcgan as script

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO / 'models' / script.desc


def params_path(model_dir, epoch, part):
    """``lib.params.params_path``, saying where the original's weights go when they are missing."""
    hint = (' (the original\'s weights: copy dcgan_code/models/' + script.desc + ' into the repo\'s '
            'models/ folder)' if Path(model_dir).name == script.desc else '')
    return lib_params_path(model_dir, epoch, part, hint)


def _check_and_set(params, arrays, path):
    check_shapes(arrays, [(p.name, p.get_value(borrow=True).shape) for p in params], path)
    for p, a in zip(params, arrays):
        p.set_value(floatX(a))


def load_model(model_dir, epoch, parts=('gen', 'discrim')):
    """The train script's own parameters holding the values of the files of ``epoch``.

    Returns ``{'gen': gen_params, 'discrim': discrim_params}`` (the ``parts`` asked for) as
    shared variables named gw, gg, ... / dw, dw2, .... The widths (``nz``, ``ngf``, ``ndf``,
    ``nc``) are read off the first/last arrays; every array is then checked against the shape
    the architecture gives it at those widths.
    """
    paths = {part: params_path(model_dir, epoch, part) for part in parts}
    arrays = {part: load_params(paths[part]) for part in parts}
    for part, a in arrays.items():
        if not a or any(x.ndim not in (1, 2, 4) for x in a):
            raise DataError(f'{paths[part]}: expected 1-, 2- and 4-D parameter arrays')
    widths = dict(nz=script.nz, ngf=script.ngf, ndf=script.ndf, nc=script.nc)  # unused parts
    if 'gen' in arrays:
        gw, gwx = arrays['gen'][0], arrays['gen'][-1]
        if gw.ndim != 2 or gwx.ndim != 4:
            raise DataError(f'{paths["gen"]}: first array {gw.shape} / last {gwx.shape}, expected '
                            'gw (nz, ngf*64) and gwx (ngf, nc, 5, 5)')
        widths.update(nz=gw.shape[0], ngf=gwx.shape[0], nc=gwx.shape[1])
    if 'discrim' in arrays:
        dw = arrays['discrim'][0]
        if dw.ndim != 4:
            raise DataError(f'{paths["discrim"]}: first array {dw.shape}, expected dw (ndf, nc, 5, 5)')
        widths.update(ndf=dw.shape[0], nc=dw.shape[1] if 'gen' not in arrays else widths['nc'])
    state = rng.np_rng.get_state()
    gen_params, discrim_params = script.init_params(**widths)  # names and shapes; values below
    rng.np_rng.set_state(state)  # loading a model draws nothing from the project's generator
    out = {}
    for part, params in (('gen', gen_params), ('discrim', discrim_params)):
        if part in arrays:
            _check_and_set(params, arrays[part], paths[part])
            out[part] = params
    return out
