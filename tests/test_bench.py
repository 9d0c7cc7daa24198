"""`zoo bench`: the numbers it reports, the JSON keyed by machine, the Pareto plot, and bad input."""
from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo.bench import bench, count_macs, matmul_peak_gflops
from zoo.cli import main as cli


def test_macs_match_the_paper_for_mobilenetv3():
    model = zoo.load("mobilenetv3_small_100").eval()
    macs = count_macs(model, torch.randn(1, 3, 224, 224))
    reported = zoo.info("mobilenetv3_small_100").reported_value("macs")  # 56M MAdds
    assert abs(macs / 1e6 - reported.value) / reported.value < 0.06


def test_matmul_probe_is_positive_and_finite():
    peak = matmul_peak_gflops(threads=1, size=256, seconds=0.2)
    assert 0.1 < peak < 1e6


def test_bench_writes_json_keyed_by_machine_and_a_plot(tmp_path):
    pytest.importorskip("onnxruntime")
    doc = bench(["mnasnet_small"], backends=("torch", "onnxruntime"), batch_sizes=(1, 2), imgsz=64, threads=1,
                runs=50, warmup=2, out_dir=tmp_path, progress=False)
    path = tmp_path / f"{__import__('zoo.bench').bench.machine_key(doc['machine'])}.json"
    assert doc["path"] == str(path) and path.is_file()
    saved = json.loads(path.read_text())
    assert saved["machine"]["threads"] == 1 and saved["machine"]["peak_matmul_gflops"] > 0
    rows = saved["results"]
    assert {(r["backend"], r["batch"]) for r in rows} == {("torch", 1), ("torch", 2), ("onnxruntime", 1), ("onnxruntime", 2)}
    for r in rows:
        assert "error" not in r, r
        assert 0 < r["p50_ms"] <= r["p90_ms"] and r["throughput_per_s"] > 0 and 0 < r["fraction_of_peak"]
        assert r["params"] == sum(p.numel() for p in zoo.load("mnasnet_small").parameters()) and r["macs"] > 0
    assert (tmp_path / path.with_suffix(".png").name).read_bytes()[:4] == b"\x89PNG"
    compiled = bench(["mnasnet_small"], backends=("compile",), imgsz=64, threads=1, runs=50, warmup=2, out_dir=tmp_path, progress=False)
    row = next(r for r in compiled["results"] if r["backend"] == "compile")  # zoo bench --backends compile
    assert "error" not in row, row
    assert row["batch"] == 1 and 0 < row["p50_ms"] <= row["p90_ms"]
    again = bench(["mnasnet_small"], backends=("torch",), imgsz=64, threads=1, runs=50, warmup=1, out_dir=tmp_path, progress=False)
    assert len(again["results"]) == 5  # re-measured rows replace the old ones, the others stay


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["bench"], "name the models to benchmark, or pass --all"),
        (["bench", "mobilenet_v9"], "unknown model 'mobilenet_v9'"),
        (["bench", "mnasnet_small", "--backends", "tvm"], "unknown backend(s) tvm"),
        (["bench", "mnasnet_small", "--runs", "10"], "runs must be at least 50"),
    ],
)
def test_bench_bad_input(capsys, argv, needle):
    assert cli(argv) == 2
    assert needle in capsys.readouterr().err
