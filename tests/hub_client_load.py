"""Load one Hub repo the three ways (in a process whose HF_ENDPOINT is the test server).

``python tests/hub_client_load.py <repo id> <out.pt> [--entry NAME] [--revision SHA]
[--size S] [--no-timm] [--reference FOLDER]`` saves the outputs of each load (and of the
reference folder) on a fixed input, so the test can compare them bitwise.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("repo_id")
    p.add_argument("out", type=Path)
    p.add_argument("--entry")
    p.add_argument("--revision")
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--channels", type=int, default=3)
    p.add_argument("--no-timm", action="store_true")
    p.add_argument("--reference", help="encoder folder whose outputs the loads must equal")
    args = p.parse_args()
    torch.set_num_threads(1)
    from hub.encoder import Encoder

    torch.manual_seed(0)
    x = torch.randn(2, args.channels, args.size, args.size)
    outputs = {}
    with torch.no_grad():
        if args.reference:  # same process, same threads: outputs comparable bitwise
            outputs["reference"] = Encoder.from_pretrained(args.reference)(x)
        enc = Encoder.from_pretrained(args.repo_id, revision=args.revision)
        outputs["from_pretrained"] = enc(x)
        if not args.no_timm:
            import timm

            rev = f"@{args.revision}" if args.revision else ""
            model = timm.create_model(f"hf-hub:{args.repo_id}{rev}", pretrained=True).eval()
            outputs["timm"] = model(x)
        if args.entry:
            model = torch.hub.load(str(REPO), args.entry, source="local", pretrained=True)
            outputs["torch_hub"] = model.eval()(x)
    torch.save({"x": x, **outputs}, args.out)
    print("loaded:", ", ".join(outputs), file=sys.stderr)


if __name__ == "__main__":
    main()
