"""Run a peer script (../shared/peers) with N torch threads, whatever number the script itself asks for.

Run by the peers' Python, which has flair and gensim but not contextemb:

    ~/venv-peers/bin/python benchmarks/peer_threads.py 1 ../shared/peers/flair_lm.py 512 360 /tmp/flair_h512

flair_lm.py calls torch.set_num_threads(2); beside contextemb's two directions (one thread each) it must have one
thread too, so that every direction gets an equal share of the cores. The peer scripts are read-only, so the
call is made a no-op here instead.
"""

import runpy
import sys

import torch

threads = int(sys.argv[1])
torch.set_num_threads(threads)
torch.set_num_threads = lambda _requested: None  # the script's own request is overruled, on purpose
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
