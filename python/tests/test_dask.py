"""A sweep (spectra x methods x batches) on a dask.distributed LocalCluster with
two worker processes gathers the same table as the serial sweep."""
import numpy as np
import pytest

import cesr

distributed = pytest.importorskip("distributed")

SPECTRA = [cesr.Spectrum.loguniform(d=40, kappa=1e3), cesr.Spectrum.powerlaw(d=40, alpha=2.0),
           cesr.Spectrum(np.geomspace(1.0, 1e-2, 25), init=np.linspace(2.0, 0.5, 25), name="mine")]
METHODS = ["sgd", "hb"]
BATCHES = [1, 8, 64]


def table(results):
    return [(r["spectrum"], r["method"], r["batch"], r["gap"], r["steps"], tuple(sorted(r["params"].items())))
            for r in results]


def rows(spectrum, f):
    return [dict(row, spectrum=spectrum.text) for row in f.rows]


def test_dask_sweep_equals_the_serial_sweep():
    serial = [cesr.tune(sp, m, batch=b) for sp in SPECTRA for m in METHODS for b in BATCHES]
    serial_frontiers = [cesr.frontier(sp, methods=METHODS, batches=BATCHES, threads=1) for sp in SPECTRA]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        futures = [client.submit(cesr.tune, sp, m, batch=b, pure=False)
                   for sp in SPECTRA for m in METHODS for b in BATCHES]
        frontier_futures = client.map(cesr.frontier, SPECTRA, methods=METHODS, batches=BATCHES, threads=1)
        parallel = client.gather(futures)
        parallel_frontiers = client.gather(frontier_futures)
        # the work really ran in the two worker processes
        assert len(client.scheduler_info()["workers"]) == 2
    assert parallel == serial
    assert parallel_frontiers == serial_frontiers
    gathered = [row for sp, f in zip(SPECTRA, parallel_frontiers) for row in rows(sp, f)]
    expected = [row for sp, f in zip(SPECTRA, serial_frontiers) for row in rows(sp, f)]
    assert table(gathered) == table(expected) and len(gathered) == len(SPECTRA) * len(METHODS) * len(BATCHES)
    assert [f.to_json() for f in parallel_frontiers] == [f.to_json() for f in serial_frontiers]
