from typer.testing import CliRunner

from dynacure.cli.main import app
from dynacure.io.atomic import write_json_atomic
from dynacure.stats import bootstrap_ci


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and "dynacure" in res.output


def test_atomic_write_leaves_no_temp(tmp_path):
    write_json_atomic(tmp_path / "a.json", {"x": 1})
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_bootstrap_interval_covers_mean():
    import numpy as np

    vals = np.r_[np.zeros(50), np.ones(50)]
    est = bootstrap_ci(vals, seed=1)
    assert est.value == 0.5 and est.low < 0.5 < est.high and est.n == 100
