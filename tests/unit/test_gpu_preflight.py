"""`make doctor GPU=1` judges the host's driver and GPUs from real nvidia-smi answers.

The fixtures are recorded outputs of real machines (tests/unit/fixtures/nvidia-smi/
SOURCES.md says where each comes from). Driver versions in the boundary cases are
NVIDIA's own numbers from the CUDA release notes' driver table, or ones reported
from real hosts; no version here is made up.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tfdock import gpu_preflight
from tfdock.gpu_preflight import LINUX, WSL, Gpu, assess, kernels_for, parse_gpus, preflight

FIXTURES = Path(__file__).parent / "fixtures" / "nvidia-smi"


def _recorded(name: str) -> str:
    return (FIXTURES / name).read_text()


def _levels(findings) -> dict[str, str]:
    return {f.name: f.level for f in findings}


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("h100-80gb-hbm3_590.48.01.csv", [("0", "NVIDIA H100 80GB HBM3", "590.48.01", "9.0")]),
        ("h200_580.159.04.csv", [("0", "NVIDIA H200", "580.159.04", "9.0")]),
        ("l40s_595.80.csv", [("0", "NVIDIA L40S", "595.80", "8.9")]),
        (
            "rtx-2080-super_595.71.05.csv",
            [("0", "NVIDIA GeForce RTX 2080 SUPER", "595.71.05", "7.5")],
        ),
        (
            "titan-v_rtx-5880-ada_570.86.15.csv",
            [
                ("0", "NVIDIA TITAN V", "570.86.15", "7.0"),
                ("1", "NVIDIA RTX 5880 Ada Generation", "570.86.15", "8.9"),
            ],
        ),
    ],
)
def test_recorded_answers_are_read_by_column_name(fixture, expected):
    """Each GPU's index, name, driver and compute capability come out of nvidia-smi's CSV."""
    assert [tuple(gpu) for gpu in parse_gpus(_recorded(fixture))] == expected


def test_h100_on_a_new_driver_passes_with_a_jit_warning(repo_root):
    """Hopper has only PTX in TensorFlow 2.21: the driver passes, the GPU warns of the JIT compile."""
    findings = preflight(
        repo_root / "requirements-gpu.txt", _recorded("h100-80gb-hbm3_590.48.01.csv"), LINUX
    )
    assert _levels(findings) == {"driver": "ok", "gpu0": "warn"}
    warning = findings[1].detail
    assert "JIT-compiles them from compute_90 PTX" in warning
    assert "over 30 minutes" in warning


def test_h200_on_driver_580_passes_with_a_jit_warning(repo_root):
    """The recorded H200 (whose driver JIT-compiled CUDA 12.5's compute_90 PTX) passes and warns."""
    findings = preflight(
        repo_root / "requirements-gpu.txt", _recorded("h200_580.159.04.csv"), LINUX
    )
    assert _levels(findings) == {"driver": "ok", "gpu0": "warn"}
    assert "NVIDIA driver 580.159.04, at least 555.42.06" in findings[0].detail
    assert findings[1].detail.startswith("NVIDIA H200, compute capability 9.0: ")
    assert "the first run JIT-compiles them from compute_90 PTX" in findings[1].detail


# The answer quoted in the issue: an RTX 5090 (Blackwell, 12.0) on driver 580.95.05.
RTX_5090 = "index, driver_version, name, compute_cap\n0, 580.95.05, NVIDIA GeForce RTX 5090, 12.0\n"


def test_consumer_blackwell_fails_with_the_way_out(repo_root):
    """Compute capability 12.0 fails in one sentence naming the upstream failure and the way out."""
    findings = preflight(repo_root / "requirements-gpu.txt", RTX_5090, LINUX)
    assert _levels(findings) == {"driver": "ok", "gpu0": "FAIL"}
    gpu = findings[1]
    assert gpu.detail.startswith("NVIDIA GeForce RTX 5090, compute capability 12.0: ")
    assert "does not run on compute capability 12.x" in gpu.detail
    assert "CUDA_ERROR_INVALID_PTX" in gpu.detail
    assert "sm_120" in gpu.detail
    assert gpu.fix.startswith("use the CPU targets (make docker-train, or the CPU dev container)")
    assert "a TensorFlow build made for compute capability 12.x" in gpu.fix


@pytest.mark.parametrize(
    "compute_cap",
    [
        "10.0",  # datacenter Blackwell (B200)
        "10.3",  # datacenter Blackwell Ultra (B300)
        "11.0",  # Jetson Thor (sm_110, named sm_101 before CUDA 13)
        "13.0",  # no GPU yet: anything above 12.x is unknown
    ],
)
def test_gpus_above_hopper_but_not_12x_warn_untested(compute_cap):
    """Upstream has no report for these: they pass with a warning that says untested and why."""
    gpu = _recorded_gpu("h200_580.159.04.csv")._replace(compute_cap=compute_cap)
    finding = assess([gpu], "12.5.82", LINUX)[1]
    assert finding.level == "warn"
    assert f"compute capability {compute_cap}: untested, " in finding.detail
    assert "fails on compute capability 12.x" in finding.detail
    assert finding.detail.endswith("run make gpu-check before training on it")


def test_gpus_with_prebuilt_kernels_pass(repo_root):
    """Volta and Ada on a 570 driver: both GPUs run TensorFlow's SASS, nothing to warn about."""
    findings = preflight(
        repo_root / "requirements-gpu.txt", _recorded("titan-v_rtx-5880-ada_570.86.15.csv"), LINUX
    )
    assert _levels(findings) == {"driver": "ok", "gpu0": "ok", "gpu1": "ok"}
    assert "(sm_70)" in findings[1].detail
    assert "(sm_89)" in findings[2].detail


def test_wsl_compares_the_windows_driver_with_the_windows_column(repo_root):
    """Under WSL nvidia-smi shows the Windows driver (591.86); CUDA 12.5's Windows driver is 555.85."""
    findings = preflight(
        repo_root / "requirements-gpu.txt", _recorded("rtx-2080-super_windows_591.86.csv"), WSL
    )
    assert findings[0].level == "ok"
    assert "555.85" in findings[0].detail


def _recorded_gpu(fixture: str) -> Gpu:
    (gpu,) = parse_gpus(_recorded(fixture))
    return gpu


@pytest.mark.parametrize(
    ("driver", "fixture", "level", "words"),
    [
        # CUDA 12.5 Update 1's own driver (Table 3): everything runs.
        ("555.42.06", "h100-80gb-hbm3_590.48.01.csv", "ok", "at least 555.42.06"),
        # CUDA 12.5 GA's driver is older than 12.5 Update 1's: no JIT of its PTX.
        ("555.42.02", "h100-80gb-hbm3_590.48.01.csv", "FAIL", "older than 555.42.06"),
        # CUDA 12.2 Update 2's driver: H100 needs the PTX JIT, so it fails ...
        (
            "535.104.05",
            "h100-80gb-hbm3_590.48.01.csv",
            "FAIL",
            "CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
        ),
        # ... while a GPU with SASS runs through minor-version compatibility.
        ("535.104.05", "l40s_595.80.csv", "warn", "minor-version compatibility"),
        # CUDA 12.0 GA's driver, the oldest for CUDA 12 at all.
        ("525.60.13", "rtx-2080-super_595.71.05.csv", "warn", "minor-version compatibility"),
        # A 470 driver (huggingface/candle#733): too old for CUDA 12.
        ("470.182.03", "rtx-2080-super_595.71.05.csv", "FAIL", "older than 525.60.13"),
    ],
)
def test_driver_is_judged_against_the_locked_cuda(driver, fixture, level, words):
    """The driver passes, warns or fails by NVIDIA's table for the lock's CUDA 12.5."""
    gpu = _recorded_gpu(fixture)._replace(driver=driver)
    finding = assess([gpu], "12.5.82", LINUX)[0]
    assert (finding.name, finding.level) == ("driver", level)
    assert words in finding.detail
    if level == "FAIL":
        assert finding.fix == (
            "install NVIDIA driver 555.42.06 or newer (CUDA 12.5's own driver), then reboot"
        )


@pytest.mark.parametrize(
    ("compute_cap", "kernels"),
    [
        ("5.2", "none"),  # Maxwell: CUDA 12 runs it, TensorFlow 2.21 has no kernels
        ("6.1", "sm_60"),  # Pascal GeForce: sm_60's SASS runs on 6.x
        ("7.5", "sm_70"),  # Turing
        ("8.6", "sm_80"),  # Ampere GeForce
        ("8.9", "sm_89"),  # Ada
        ("9.0", "ptx"),  # Hopper: compute_90 PTX only
        ("12.0", "ptx"),  # Blackwell GeForce
    ],
)
def test_kernels_follow_cuda_binary_compatibility(compute_cap, kernels):
    """SASS runs within its major at an equal or higher minor; PTX runs at or above its target."""
    assert kernels_for(compute_cap) == kernels


def test_gpu_older_than_the_build_fails_with_a_fix():
    """A GPU below compute capability 6.0 fails in one sentence that names the way out."""
    gpu = _recorded_gpu("l40s_595.80.csv")._replace(
        name="NVIDIA GeForce GTX 970", compute_cap="5.2"
    )
    finding = assess([gpu], "12.5.82", LINUX)[1]
    assert finding.level == "FAIL"
    assert "kernels for compute capability 6.0 and newer only" in finding.detail
    assert "or the CPU targets" in finding.fix


def _answer(returncode: int, stdout: str) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["nvidia-smi"], returncode, stdout, "")


def test_an_nvidia_smi_without_compute_cap_is_asked_again_without_it():
    """The recorded 'not a valid field' refusal leads to a second query without compute_cap."""
    asked = []

    def run(fields):
        asked.append(fields)
        if "compute_cap" in fields:
            return _answer(2, _recorded("compute-cap-not-a-valid-field.txt"))
        return _answer(0, "index, driver_version, name\n0, 570.86.15, NVIDIA TITAN V\n")

    gpus = parse_gpus(gpu_preflight.query_nvidia_smi(run))
    assert asked == ["index,driver_version,name,compute_cap", "index,driver_version,name"]
    assert gpus == [Gpu("0", "NVIDIA TITAN V", "570.86.15", None)]
    assert assess(gpus, "12.5.82")[1].level == "warn"


def test_nvidia_smi_failing_is_one_sentence():
    """nvidia-smi's own first line and exit status reach the report."""

    def run(fields):
        return _answer(6, "No devices were found\n")

    with pytest.raises(RuntimeError, match=r"nvidia-smi failed \(exit 6\): No devices were found"):
        gpu_preflight.query_nvidia_smi(run)


def test_main_prints_one_tab_separated_finding_per_line(repo_root, capsys, monkeypatch):
    """doctor.sh reads level, name, detail and fix from each line; without nvidia-smi it is one FAIL."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert gpu_preflight.main(["--lock", str(repo_root / "requirements-gpu.txt")]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.split("\t")[:3] == ["FAIL", "gpu", "nvidia-smi is not installed (no NVIDIA driver)"]


def test_preflight_runs_on_the_hosts_plain_python(repo_root):
    """The file imports only the standard library, so a host python3 without the venv runs it."""
    result = subprocess.run(
        ["/usr/bin/python3", "-I", str(repo_root / "src/tfdock/gpu_preflight.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "nvidia" in result.stdout.lower()
