"""Train the tests' tiny forward model in its own process, so that a test can signal or kill it.

    python tests/tiny_run.py CORPUS OUT STEPS [--resume]

CORPUS may name several files joined by os.pathsep; they are read interleaved with --mix's first weight on
the first file (MIX=NAME=WEIGHT in the environment). DIRECTIONS=forward,backward trains both, each in its own
spawned process (by default only the forward model, in this process).
"""

import dataclasses
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from conftest import tiny_config  # noqa: E402

from contextemb.config import ModelConfig  # noqa: E402
from contextemb.pretrain.train import pretrain  # noqa: E402


def main() -> int:
    corpus, out, steps = sys.argv[1].split(os.pathsep), Path(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    base = tiny_config(dropout=0.2)
    config = ModelConfig(lm=base.lm, train=dataclasses.replace(base.train, max_steps=steps, checkpoint_every=5))
    directions = tuple(os.environ.get("DIRECTIONS", "forward").split(","))
    summaries = pretrain(corpus, out, config, directions=directions, threads=1, progress=False,
                         resume="--resume" in sys.argv, mix=os.environ.get("MIX"))
    return 130 if summaries[0].interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
