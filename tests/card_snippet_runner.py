"""Run every code block of a model card as a user would, in a process whose ``HF_ENDPOINT``,
``TORCH_HOME`` and ``SIAMHUB_CACHE`` the test sets.

``python tests/card_snippet_runner.py <README.md> <reference folder> <out.pt>``: each
``python`` block runs in a fresh namespace; the modules it leaves in ``encoder``, ``backbone``
or ``model`` are applied to one fixed input, beside the reference folder's ``Encoder`` (same
process, same threads: bitwise comparable). Each ``bash`` block runs through bash in the
output's folder. A block that fails ends the run with its traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```$", re.M | re.S)
MODELS = ("encoder", "backbone", "model")


def code_blocks(card: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced python / bash block, in order."""
    return [(m[1], m[2]) for m in BLOCK.finditer(card)]


def main() -> None:
    readme, reference, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    import torch

    from hub.encoder import Encoder

    torch.set_num_threads(1)
    expected = Encoder.from_pretrained(reference)
    c, h, w = expected.config["pretrained_cfg"]["input_size"]
    torch.manual_seed(0)
    x = torch.randn(1, c, h, w)
    outputs: dict[str, torch.Tensor] = {}
    ran: list[str] = []
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    with torch.no_grad():
        outputs["reference"] = expected(x)
        for i, (language, code) in enumerate(code_blocks(readme.read_text())):
            if language == "bash":
                subprocess.run(["bash", "-euc", code], cwd=out.parent, env=env, check=True)
                ran.append(f"{i}:bash")
                continue
            scope: dict = {}
            exec(compile(code, f"{readme}:block{i}", "exec"), scope)
            for name in MODELS:
                if isinstance(scope.get(name), torch.nn.Module):
                    outputs[f"{i}:{name}"] = scope[name].eval()(x)
            ran.append(f"{i}:python")
    torch.save({"outputs": outputs, "ran": ran}, out)


if __name__ == "__main__":
    main()
