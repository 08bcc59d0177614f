"""The runtime runs where PyTorch is not installed: a subprocess whose import
system refuses `torch` loads an artifact, predicts, and runs `prunelab predict`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

from prunelab.models.presets import create_spec
from prunelab.sparse.format import param_names, write_artifact

BLOCK_TORCH = textwrap.dedent("""
    import sys

    class BlockTorch:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("torch is blocked in this test")

    sys.meta_path.insert(0, BlockTorch())
""")


def run_blocked(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(BLOCK_TORCH + textwrap.dedent(code))
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)


def make_artifact(tmp_path: Path, arch: str) -> tuple[Path, Path]:
    spec = create_spec(arch)
    rng = np.random.default_rng(0)
    weights = {}
    for name, shape in param_names(spec):
        w = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        if name.endswith(".weight"):
            w[rng.random(shape) > 0.1] = 0
        weights[name] = w
    path = tmp_path / f"{arch}.plsa"
    write_artifact(path, spec, weights, "int8")
    x = tmp_path / "x.npz"
    np.savez(x, X=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8))
    return path, x


def test_blocker_really_blocks(tmp_path: Path) -> None:
    proc = run_blocked("import torch\n", tmp_path)
    assert proc.returncode != 0 and "torch is blocked" in proc.stderr


def test_load_and_predict_without_torch(tmp_path: Path) -> None:
    for arch in ("lenet-300-100", "lenet-5"):
        path, x = make_artifact(tmp_path, arch)
        proc = run_blocked(f"""
            import json, sys
            import numpy as np
            import prunelab
            import prunelab.sparse
            rt = prunelab.sparse.load({str(path)!r}, kernel="calibrate")
            X = np.load({str(x)!r})["X"]
            p = rt.predict_proba(X)
            print(json.dumps({{"pred": rt.predict(X).tolist(), "sum": p.sum(axis=1).tolist(),
                              "torch_loaded": any(m == "torch" or m.startswith("torch.") for m in sys.modules)}}))
        """, tmp_path)
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout)
        assert len(out["pred"]) == 5 and all(0 <= p < 10 for p in out["pred"])
        np.testing.assert_allclose(out["sum"], 1.0, rtol=1e-5)
        assert out["torch_loaded"] is False


def test_cli_predict_without_torch(tmp_path: Path) -> None:
    path, x = make_artifact(tmp_path, "lenet-5")
    proc = run_blocked(f"""
        import sys
        sys.argv = ["prunelab", "predict", {str(path)!r}, "--input", {str(x)!r}, "--json"]
        from prunelab.cli import main
        main()
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["count"] == 5 and len(out["predictions"]) == 5 and len(out["probabilities"][0]) == 10


def test_export_shrinks_without_torch(tmp_path: Path) -> None:
    """`prunelab.export` (dead units removed by default) runs where torch cannot be imported."""
    proc = run_blocked(f"""
        import numpy as np
        from prunelab.models.model import Model
        from prunelab.models.presets import create_spec
        from prunelab.sparse.export import export
        from prunelab.sparse.format import param_names
        spec = create_spec("lenet-300-100")
        rng = np.random.default_rng(0)
        w = {{n: (rng.standard_normal(s) * (rng.random(s) < 0.01)).astype(np.float32) for n, s in param_names(spec)}}
        res = export(Model(spec, w), {str(tmp_path / "m.plsa")!r}, precision="int8")
        print(res.bytes)
    """, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 0
