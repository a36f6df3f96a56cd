"""Spectra, methods and every result survive pickle (what Dask and multiprocessing need)."""
import pickle

import numpy as np
import pytest

import cesr


def roundtrip(x):
    y = pickle.loads(pickle.dumps(x))
    assert type(y) is type(x) and y == x
    return y


def test_spectra(tmp_path):
    sp = roundtrip(cesr.Spectrum.powerlaw(d=100, alpha=1.5))
    assert sp.text == "powerlaw:d=100,alpha=1.5"
    roundtrip(cesr.Spectrum.loguniform(d=50, kappa=1e4, scale=2, init="powerlaw:beta=1"))
    own = roundtrip(cesr.Spectrum(np.linspace(1, 0.01, 30), init=np.arange(30.0), name="mine"))
    assert own.text == "mine" and own.init_text == "array"
    path = tmp_path / "eig.txt"
    path.write_text("1\n0.5\n0.25\n")
    f = cesr.Spectrum.file(path)
    g = pickle.loads(pickle.dumps(f))
    path.unlink()  # a worker elsewhere needs no file: the values travel
    assert g == f and g.text == f"file:{path}"
    # the eigenvalues are read-only views
    with pytest.raises(ValueError):
        sp.eigenvalues[0] = 2


def test_methods():
    roundtrip(cesr.method("hb", lr=0.1, momentum=0.9))
    roundtrip(cesr.method("sgd", lr=0.5, average="ema:decay=0.9"))
    roundtrip(cesr.method("torch-sgd", lr=0.1, momentum=0.9, nesterov=True))
    roundtrip(cesr.method("lookahead", lr=0.1, inner="torch-sgd", momentum=0.5))
    m = roundtrip(cesr.method("hb", lr=0.1, momentum=0.9, lr_schedule="cosine:warmup=5%"))
    assert m.lr_schedule == "cosine:warmup=5%"
    c = roundtrip(cesr.custom([[1.0, 0.5], [1.0, 0.0]], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], s0=[1.0, 0.0]))
    assert c.to_dict()["s0"] == [1.0, 0.0]
    assert cesr.method("hb", lr=0.1, momentum=0.9) != cesr.method("hb", lr=0.1, momentum=0.8)


def test_results():
    sp = cesr.Spectrum.loguniform(d=20, kappa=100)
    m = cesr.method("hb", lr=0.3, momentum=0.5)
    results = [
        cesr.loss(sp, m, batch=2, steps=50, every=10),
        cesr.steps(sp, m, batch=2, target=1e-2, relative=True),
        cesr.rate(sp, m, batch=2),
        cesr.stability(sp, "hb", batch=2, momentum=0.5),
        cesr.tune(sp, "sgd", batch=2),
        cesr.tune(sp, "sgd", batch=2, objective="final", steps=20, lr_schedule="cosine"),
        cesr.loss(sp, m, steps=20, batch_schedule="ramp:start=1,every=5,max=4"),
        cesr.frontier(sp, methods=["sgd"], batches=[1, 4]),
        cesr.simulate(sp, m, batch=2, steps=20, runs=50, every=5),
    ]
    s = results[-1]
    results.append(cesr.check(s.step, s.mean, s.stderr, spectrum=sp, method=m, batch=2))
    for r in results:
        y = roundtrip(r)
        assert repr(y) == repr(r) and "\n" not in repr(r)
        d = r.to_dict()
        assert isinstance(d, dict) and set(d) == set(r._fields)
        assert isinstance(r.to_json_dict(), dict)
