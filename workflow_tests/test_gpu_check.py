"""`make gpu-check`'s script on the CPU: on a machine without CUDA it exits 0 at once; `--device cpu` runs its
whole path (train, SIGKILL + resume in child processes, impute, the checks) so the script cannot rot between the
rare sessions that have a GPU."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gpu_check  # noqa: E402


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA machine runs the real check (make gpu-check)")
def test_gpu_check_without_cuda_says_so_and_passes(capsys):
    assert gpu_check.main([]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_gpu_check_whole_path_on_the_cpu_passes_its_own_checks(capsys):
    assert gpu_check.main(["--device", "cpu", "--cells", "240", "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "cpu killed after epoch 1 + resumed" in out            # the child was killed and resumed
    assert "uninterrupted vs resumed 1.000" in out                  # resuming restores the run exactly on the CPU
    assert "gpu-check: passed" in out
