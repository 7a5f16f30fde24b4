"""A/B of one direction's float32 training step: nn.LSTM (main's path) against contextemb.projected_lstm.

    .venv/bin/python -m benchmarks.lstm_ab --pairs 3 --steps 80 --warmup 10 --threads 1 [--baseline COMMIT]
    .venv/bin/python -m benchmarks.lstm_ab --matmul     # the products' rates, torch.mm (MKL) against oneDNN
    .venv/bin/python -m benchmarks.lstm_ab --inference  # one LSTM layer without gradients: nn.LSTM against ours
    .venv/bin/python -m benchmarks.lstm_ab --profile projected --steps 12   # where a step's time goes

Each run is a fresh process that trains the default configuration (the packaged ko-nsmc-small's config.json and
tokenizer: char-CNN, 2 layers, hidden 512, projection 256, 8k pieces, batch_tokens 2048) from the same seed on
the same batches (the first lines of the NSMC corpus, as pretraining batches them), with pretraining's Adam,
warm-up and clipping. It reports pieces/s over the steps after the warm-up -- by the wall clock and by the
process's CPU time, which other programs on a shared machine disturb less -- the training loss at every step,
and the held-out loss at the end (later NSMC lines). Variants run in alternating order, pair by pair, and the
speed-up is the ratio within each pair.

Variants: `projected` (this tree as it trains), `nn.LSTM` (LanguageModel.fast_cpu_training off: torch's LSTM
and Linears; the char-CNN's length groups stay), with --baseline `baseline COMMIT` (that commit's code, laid out
as benchmarks.pretraining does; ratios are then to it), and with --attribution `projected+torch.mm` (the
hand-written LSTM with torch.mm instead of oneDNN).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from benchmarks.common import NSMC_CORPUS, TOKENIZER_MODEL

VARIANTS = ("nn.LSTM", "projected")
ATTRIBUTION = "projected+torch.mm"


def one_run(variant: str, corpus: Path, heldout: Path, steps: int, warmup: int, threads: int,
            weights_out: Path, baseline_path: Optional[Path] = None, profile: bool = False) -> dict:
    """Train `warmup + steps` steps of `variant` in this process; speeds, losses and the held-out loss.
    The trained weights go to `weights_out` (safetensors), for the comparison between variants.
    baseline_path: where a baseline commit's contextemb is laid out (see baseline_variant), imported instead.
    profile: torch.profiler over the timed steps, its table printed to stderr."""
    if baseline_path is not None:
        sys.path.insert(0, str(baseline_path))  # ahead of this tree (the process runs with -S: no editable install)
    import torch
    from safetensors.torch import save_file

    from contextemb.config import read_config
    from contextemb.heldout import evaluation_batches, score_batches
    from contextemb.lm import LanguageModel
    from contextemb.model_dir import build_language_model
    from contextemb.packaged import resolve_model
    from contextemb.pretrain.data import BatchStream
    from contextemb.pretrain.loop import learning_rate_factor, make_optimizer
    from contextemb.tokenization import Tokenizer

    torch.set_num_threads(threads)
    if baseline_path is None:
        from contextemb import onednn

        LanguageModel.fast_cpu_training = variant != "nn.LSTM"
        onednn.ENABLED = variant != ATTRIBUTION
    model_dir = resolve_model(TOKENIZER_MODEL)
    config = read_config(model_dir / "config.json")
    tokenizer = Tokenizer.from_file(model_dir / "tokenizer.model")
    lm, train = config.lm, config.train
    stream = BatchStream(corpus, tokenizer, "forward", max_pieces=lm.max_pieces, batch_tokens=train.batch_tokens,
                         seed=train.seed)
    batches = [batch for batch, _ in zip((b for b, _ in stream), range(warmup + steps))]
    held_out = evaluation_batches(heldout, tokenizer, "forward", max_pieces=lm.max_pieces,
                                  batch_tokens=train.batch_tokens)
    torch.manual_seed(train.seed)
    model = build_language_model(config, tokenizer).train()
    optimizer = make_optimizer(model, train)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate_factor(train))
    losses, pieces = [], 0
    profiler = None
    for step, batch in enumerate(batches):
        if step == warmup:
            wall, cpu = time.perf_counter(), time.process_time()
            if profile:
                profiler = torch.profiler.profile()
                profiler.__enter__()
        loss = model(batch.piece_ids, batch.targets)
        optimizer.zero_grad(set_to_none=True)
        loss.mean.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.clip_norm)
        optimizer.step()
        scheduler.step()
        losses.append(float(loss.mean.detach()))
        pieces += loss.count if step >= warmup else 0
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler is not None:
        profiler.__exit__(None, None, None)
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    score = score_batches(model, held_out)
    save_file({name: p.detach().contiguous() for name, p in model.named_parameters()}, str(weights_out))
    return {"variant": variant, "pieces": pieces, "wall_s": wall, "cpu_s": cpu, "pieces_per_s": pieces / wall,
            "pieces_per_cpu_s": pieces / cpu, "losses": losses, "heldout_nll": score.nll / score.pieces,
            "heldout_pieces": score.pieces, "weights": str(weights_out)}


# (rows, in, out) of the LSTM's products at the default sizes, batch 64 x 32 steps: a step's recurrent and
# projection products, the input products of all steps, and a weight gradient over all steps
PRODUCT_SHAPES = ((64, 256, 2048), (64, 512, 256), (2048, 256, 2048), (2048, 2048, 256))


def matmul_rates(threads: int, repeats: int = 30) -> str:
    """GFLOP/s (by process CPU time) of torch.mm and of contextemb.onednn on PRODUCT_SHAPES, float32."""
    import torch

    from contextemb import onednn

    torch.set_num_threads(threads)
    lines = ["| rows x in -> out | torch.mm GFLOP/s | oneDNN GFLOP/s | oneDNN, packed weight, GFLOP/s |",
             "|---|---|---|---|"]
    for rows, inputs, outputs in PRODUCT_SHAPES:
        matrix, weight = torch.randn(rows, inputs), torch.randn(outputs, inputs)
        packed = onednn.prepare(weight, rows)
        flops = 2 * rows * inputs * outputs
        rates = []
        for product in (lambda: torch.mm(matrix, weight.t()), lambda: onednn.times_transposed(matrix, weight),
                        lambda: onednn.times_transposed(matrix, packed)):
            product()
            start = time.process_time()
            for _ in range(repeats):
                product()
            rates.append(flops * repeats / (time.process_time() - start) / 1e9)
        lines.append(f"| {rows} x {inputs} -> {outputs} | " + " | ".join(f"{rate:.0f}" for rate in rates) + " |")
    return "\n".join(lines) + "\n"


def inference_times(threads: int, rows: int = 200, steps: int = 24, repeats: int = 30) -> str:
    """ms per call of one LSTM layer (512/256, batch-first) without gradients, nn.LSTM against
    contextemb.inference_lstm, float32 and bfloat16, by the wall clock (median of `repeats` calls)."""
    import torch
    from torch import nn

    from contextemb.inference_lstm import inference_lstm, usable

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    lines = [f"| {rows} rows x {steps} steps, {threads} thread(s) | nn.LSTM ms | inference_lstm ms | speed-up |",
             "|---|---|---|---|"]
    for dtype in (torch.float32, torch.bfloat16):
        lstm = nn.LSTM(256, 512, proj_size=256, batch_first=True).to(dtype).eval()
        inputs = torch.randn(rows, steps, 256, dtype=dtype)
        times = []
        with torch.inference_mode():
            if not usable(lstm, inputs):
                return "inference_lstm is not usable here (no oneDNN linear operators, or not x86)\n"
            for run in (lambda: lstm(inputs), lambda: inference_lstm(lstm, inputs)):
                run()
                calls = []
                for _ in range(repeats):
                    start = time.perf_counter()
                    run()
                    calls.append(time.perf_counter() - start)
                times.append(statistics.median(calls) * 1e3)
        lines.append(f"| {str(dtype).removeprefix('torch.')} | {times[0]:.1f} | {times[1]:.1f} | "
                     f"{times[0] / times[1]:.2f}x |")
    return "\n".join(lines) + "\n"


def write_lines(source: Path, start: int, count: int, out: Path) -> Path:
    """Lines start .. start + count of `source`, written to `out`."""
    with open(source, encoding="utf-8") as text, open(out, "w", encoding="utf-8") as written:
        for index, line in enumerate(text):
            if index >= start + count:
                break
            if index >= start:
                written.write(line)
    return out


def load_line() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def measure(args) -> list[dict]:
    """Alternating pairs of runs, each a fresh process; one dict per run, with the load average before it."""
    work = Path(tempfile.mkdtemp(prefix="lstm-ab-"))
    corpus = write_lines(NSMC_CORPUS, 0, args.lines, work / "corpus.txt")
    heldout = write_lines(NSMC_CORPUS, args.lines, 300, work / "heldout.txt")
    variants = [*VARIANTS, ATTRIBUTION] if args.attribution else list(VARIANTS)
    if args.baseline:
        from benchmarks.pretraining import baseline_variant  # imports contextemb: never in a child run

        variants.insert(0, f"baseline {args.baseline}")
        args.baseline_path = Path(baseline_variant(args.baseline, work / "baseline").env["PYTHONPATH"])
    runs = []
    for pair in range(args.pairs):
        if args.before_pair:
            subprocess.run(args.before_pair, shell=True, check=False)
        try:
            runs += pair_runs(pair, variants if pair % 2 == 0 else variants[::-1], corpus, heldout, work, args)
        finally:
            if args.after_pair:
                subprocess.run(args.after_pair, shell=True, check=False)
    return runs


def pair_runs(pair: int, variants: list[str], corpus: Path, heldout: Path, work: Path, args) -> list[dict]:
    """One run of each variant, in this order, each a fresh process."""
    runs = []
    for variant in variants:
        load = load_line()
        command = [sys.executable, "-m", "benchmarks.lstm_ab", "--one", variant, "--corpus", str(corpus),
                   "--heldout", str(heldout), "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--threads", str(args.threads), "--weights-out", str(work / f"{pair}-{variant}.safetensors")]
        env = None
        if variant.startswith("baseline"):
            env = {**os.environ, "PYTHONPATH": str(args.baseline_path)}
            command[1:1] = ["-S"]  # the editable install of this tree stays out
            command += ["--baseline-path", str(args.baseline_path).split(os.pathsep)[0]]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout)
        result.update(pair=pair, load_before=load)
        runs.append(result)
        print(f"pair {pair + 1}, {variant}: {result['pieces_per_s']:,.0f} pieces/s wall, "
              f"{result['pieces_per_cpu_s']:,.0f} pieces/CPU-s (load {load})", file=sys.stderr, flush=True)
    return runs


def weight_difference(path_a: str, path_b: str) -> float:
    """The largest absolute difference between two runs' trained weights."""
    from safetensors.torch import load_file

    a, b = load_file(path_a), load_file(path_b)
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def report(runs: list[dict], args) -> str:
    """A markdown table of the runs, the ratios to the reference (the baseline, else nn.LSTM) within each pair,
    and the loss and weight comparison."""
    reference = f"baseline {args.baseline}" if args.baseline else "nn.LSTM"
    lines = ["| pair | variant | pieces/s (wall) | pieces/CPU-s | final training loss | held-out loss (nats/piece) |"
             " load avg before |", "|---|---|---|---|---|---|---|"]
    for run in runs:
        lines.append(f"| {run['pair'] + 1} | {run['variant']} | {run['pieces_per_s']:,.0f} | "
                     f"{run['pieces_per_cpu_s']:,.0f} | {run['losses'][-1]:.5f} | {run['heldout_nll']:.5f} | "
                     f"{run['load_before']} |")
    by_pair = {}
    for run in runs:
        by_pair.setdefault(run["pair"], {})[run["variant"]] = run
    lines.append("")
    for variant in sorted({run["variant"] for run in runs} - {reference}):
        pairs = [p for p in by_pair.values() if variant in p and reference in p]
        for unit, key in (("wall", "pieces_per_s"), ("CPU time", "pieces_per_cpu_s")):
            ratios = [p[variant][key] / p[reference][key] for p in pairs]
            lines.append(f"- {variant} / {reference}, pieces/s by {unit}, pairwise: "
                         f"{', '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f})")
        loss_gap = max(abs(a - b) for p in pairs for a, b in zip(p[variant]["losses"], p[reference]["losses"]))
        held_gap = max(abs(p[variant]["heldout_nll"] - p[reference]["heldout_nll"]) for p in pairs)
        weight_gap = max(weight_difference(p[variant]["weights"], p[reference]["weights"]) for p in pairs)
        lines.append(f"- {variant} against {reference} at equal steps: training loss differs by at most {loss_gap:.2e} "
                     f"over all {args.warmup + args.steps} steps; held-out loss by at most {held_gap:.2e} nats/piece; "
                     f"trained weights by at most {weight_gap:.2e} (largest absolute difference of any weight)")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--steps", type=int, default=80, help="timed steps per run, after the warm-up")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (pretraining gives each direction "
                                                                "half the cores: 1 on 2 cores)")
    parser.add_argument("--lines", type=int, default=20000, help="first NSMC lines the batches come from")
    parser.add_argument("--attribution", action="store_true", help=f"also run {ATTRIBUTION}")
    parser.add_argument("--baseline", metavar="COMMIT", help="also run COMMIT's code (its own training path, "
                                                              "e.g. main before this work); ratios are then to it")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--before-pair", help="a shell command run before each pair (e.g. pausing other work)")
    parser.add_argument("--after-pair", help="a shell command run after each pair, also when it failed")
    parser.add_argument("--matmul", action="store_true", help="only the product rates, torch.mm against oneDNN")
    parser.add_argument("--inference", action="store_true", help="only one LSTM layer without gradients, "
                        "nn.LSTM against contextemb.inference_lstm")
    parser.add_argument("--profile", metavar="VARIANT", help="only one run of VARIANT in this process, under "
                                                             "torch.profiler (its table on stderr)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child run: one variant, JSON on stdout
    parser.add_argument("--corpus", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--heldout", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--weights-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-path", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(args.one, args.corpus, args.heldout, args.steps, args.warmup, args.threads,
                                 args.weights_out, args.baseline_path)))
        return
    if args.matmul:
        print(matmul_rates(args.threads))
        return
    if args.inference:
        print(inference_times(args.threads))
        return
    if args.profile:
        work = Path(tempfile.mkdtemp(prefix="lstm-ab-"))
        corpus = write_lines(NSMC_CORPUS, 0, args.lines, work / "corpus.txt")
        heldout = write_lines(NSMC_CORPUS, args.lines, 300, work / "heldout.txt")
        one_run(args.profile, corpus, heldout, args.steps, args.warmup, args.threads, work / "weights.safetensors",
                profile=True)
        return
    runs = measure(args)
    text = report(runs, args)
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(runs), encoding="utf-8")


if __name__ == "__main__":
    main()
