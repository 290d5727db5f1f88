"""benchmarks/commands.py --quick: every named command runs as a user runs it and gets a row. Nothing about time is
asserted (the machine is shared); only that each row is there, ran, and has a wall time and a rate."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "commands.py"
NAMED = ("generate_workers0", "generate_all_cores", "video_640x272", "video_720p", "events_video", "events_run",
         "adapt", "train", "evaluate", "export_basicsr", "inspect_verify")


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench") / "commands.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text()), out


def test_every_named_command_has_a_row(quick):
    result, _ = quick
    assert result["quick"] is True
    for rid in NAMED:
        row = result["rows"][rid]
        assert row["returncode"] == 0, (rid, row.get("error"))
        assert row["wall_s"] > 0 and row["cpu_s"] > 0, rid
        assert row["units"] > 0 and row["rate"] > 0, rid
        assert row["command"].startswith("blursynth "), rid


def test_each_row_has_a_floor_or_says_why_not(quick):
    result, _ = quick
    for rid in NAMED:
        row = result["rows"][rid]
        if "floor" in row:
            assert row["floor"]["cpu_s"] > 0 and row["ratio"] > 0 and isinstance(row["over_3x"], bool), rid
            assert row["floor"]["from"], rid
        else:
            assert row["no_floor"], rid
    # the rows the kernel benchmarks cover
    for rid in ("generate_workers0", "generate_all_cores", "video_640x272", "video_720p", "events_video",
                "events_run", "train", "evaluate", "export_basicsr"):
        assert "floor" in result["rows"][rid], rid


def test_ray_workers_cpu_is_counted(quick):
    # Ray's raylet ignores SIGCHLD: its workers' CPU only comes in through the /proc sampler
    row = quick[0]["rows"]["generate_all_cores"]
    assert row["cpu_auto_reaped_s"] > 0
    assert row["cpu_s"] >= row["cpu_waited_s"]


def test_run_records_machine_and_load(quick):
    result, _ = quick
    assert result["machine"]["cpu_count"] >= 1
    assert len(result["load_average_start"]) == 3 and len(result["load_average_end"]) == 3
    assert isinstance(result["loaded"], bool)
    # what every benchmark's machine_info (benchmarks/common.py) records: the code it ran and the load around it
    machine = result["machine"]
    assert machine["commit"] == result["commit"]  # None only outside a git checkout
    load = machine["load_average_1_5_15"]
    assert len(load["start"]) == 3 and len(load["end"]) == 3 and all(x >= 0 for x in load["start"] + load["end"])


def test_markdown_table_from_the_json(quick):
    _, path = quick
    proc = subprocess.run([sys.executable, str(SCRIPT), "--markdown", str(path)], capture_output=True, text=True,
                          check=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("| `blursynth")]
    gpu_rows = [rid for rid in result_rows(path) if rid.endswith("_cuda") or rid == "video_events_cpu"]
    assert len(gpu_rows) >= 4
    assert len(lines) == len(NAMED) + 1 + len(gpu_rows)  # and the start-up row


def result_rows(path: Path) -> dict:
    return json.loads(path.read_text())["rows"]


def test_device_cuda_rows_run_on_a_gpu_or_say_why_not(quick):
    # --device cuda: the same work as a CPU row of the run; without a usable GPU each row is there, skipped, with
    # the reason the device probe gave (here torch sees no device); with one, it ran and is set against its CPU row
    from blursynth.cuda import unavailable_reason

    reason = unavailable_reason()
    result, _ = quick
    for rid in ("generate_cuda", "video_events_cuda", "events_video_cuda", "events_run_cuda"):
        row = result["rows"][rid]
        assert row["command"].startswith("blursynth ") and row["command"].endswith("--device cuda"), rid
        if reason is not None:
            assert row["skipped"] == reason, rid
        else:
            assert row["returncode"] == 0 and row["rate"] > 0, (rid, row.get("error"))
            assert row["vs_cpu"]["speedup"] > 0, rid


def test_the_gpu_rows_run_and_are_set_against_their_cpu_rows(tmp_path, monkeypatch):
    # what a session with a GPU gets from the --device cuda rows: each one run, measured in its own unit and set
    # against the CPU row of the same run. The CPU device stands in for the GPU here: the rows' code is under test
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_commands", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    monkeypatch.setitem(sys.modules, "bench_commands", bench)  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "GPU_DEVICE", "cpu")
    monkeypatch.setattr(bench, "cuda_probe", lambda: (None, 0.0))
    only = set(bench.CUDA_ROWS) | set(bench.CUDA_ROWS.values()) - {"video_events_cpu"}  # made with its GPU row
    rows = bench.run_plan(bench.QUICK, tmp_path, bench.Floors(bench.RESULTS), only)
    for rid, base in bench.CUDA_ROWS.items():
        row = rows[rid]
        assert row["returncode"] == 0 and row["units"] > 0 and row["rate"] > 0, (rid, row.get("error"))
        assert row["command"].endswith("--device cpu"), rid
        assert row["vs_cpu"]["row"] == base and rows[base]["wall_s"] > 0, rid
        assert row["vs_cpu"]["speedup"] == pytest.approx(rows[base]["wall_s"] / row["wall_s"]), rid
    result = {"rows": rows, "load_average_start": [0.0] * 3, "load_average_end": [0.0] * 3,
              "machine": {"cpu_count": 2}}
    table = [line for line in bench.markdown(result) if "x the CPU row (" in line]
    assert len(table) == len(bench.CUDA_ROWS)
