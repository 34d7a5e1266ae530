"""The command line: ``python -m pyinfer info | bench``.

``bench --quick`` takes most of a minute, so the suite runs the table on tiny
shapes (the hidden ``--smoke``), which checks its shape, not any speed."""
import json
import os
import re
import subprocess
import sys

import pytest

from pyinfer import bench, registry
from pyinfer.backends import _native
from pyinfer.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args, timeout=120):
    # The environment passes through unchanged (OpenBLAS variables included).
    return subprocess.run([sys.executable, "-m", "pyinfer", *args], cwd=ROOT, text=True,
                          capture_output=True, timeout=timeout)


def test_info_names_every_backend_and_the_isa():
    res = _run("info")
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "pyinfer " in out and "ISA" in out
    if _native.lib is not None:
        assert f"ISA: {_native.isa()}" in out
    for backend in registry.BACKENDS:
        assert re.search(rf"^\s+{backend}\s+(available|unavailable)", out, re.M), backend
        why = registry.unavailable_reason(backend)
        if why:
            assert why in out
    assert re.search(r"^\s+\d+ ops", out, re.M)


def test_bench_smoke_has_a_row_per_case_and_numeric_ratios(tmp_path):
    path = tmp_path / "bench.json"
    res = _run("bench", "--smoke", "--peers", "numpy", "--json", str(path), timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    labels = [bench.case_label(bench.shrink(c)) for c in bench.BENCH_CASES]
    for label in labels:
        rows = [ln for ln in lines if ln.startswith(label + " ")]
        assert len(rows) == 1, f"no single row for {label!r} in:\n{res.stdout}"
        assert re.search(r"\s\d+\.\d\dx(\s|$)", rows[0]), rows[0]
    data = json.loads(path.read_text())
    assert [r["label"] for r in data["rows"]] == labels
    for r in data["rows"]:
        assert isinstance(r["ratios"]["numpy"], float) and r["ratios"]["numpy"] > 0
        assert r["picked"] in registry.BACKENDS
    assert data["machine"]["cpu"] and data["machine"]["date"]


def test_bench_cases_filter_and_header():
    res = _run("bench", "--smoke", "--peers", "numpy", "--cases", "softmax")
    assert res.returncode == 0, res.stderr
    assert "machine:" in res.stdout and "BLAS:" in res.stdout
    lines = res.stdout.splitlines()
    assert any(ln.startswith("softmax ") for ln in lines)
    assert not any(ln.startswith(("gemm", "layer_norm", "add")) for ln in lines)


@pytest.mark.parametrize("argv", [["frobnicate"], [], ["bench", "--peers", "nosuchpeer"]])
def test_bad_command_line_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        code = main(argv)
        raise SystemExit(code)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage" in err or "unknown peer" in err


def test_unknown_subcommand_exits_2_from_the_shell():
    res = _run("frobnicate")
    assert res.returncode == 2
    assert "usage: pyinfer" in res.stderr


def test_missing_peer_is_a_clear_message():
    from pyinfer import peers
    assert "unknown peer" in peers.why_unavailable("nosuchpeer")
    with pytest.raises(peers.PeerUnsupported, match="not elementwise"):
        peers.make("numexpr", bench.BENCH_CASES[0], [], 1)
