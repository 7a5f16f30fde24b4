"""Speed benchmarks, run by hand (never by the test suite):

    python -m benchmarks.run [--quick] [--json FILE] [--only matmul,lstm,pretrain,embed,memory]

Measures in one run, on this machine, and prints a table:
- float32 matrix-multiply rate (2048^3, all threads) — the machine's yardstick;
- a plain nn.LSTM language-model training step of the default sizes (embedding 256 -> 2 x LSTM 512 proj 256 ->
  adaptive softmax 8k; 2,048 tokens per batch; Adam) — the reference our step is compared against;
- contextemb pretraining of the default configuration, both directions in parallel (pieces/s, characters/s
  per direction and in total) on the first lines of the NSMC corpus, and the FLOP rate it achieves
  (FLOPs per step counted by torch.utils.flop_counter) against the matmul rate;
- embedding throughput: all 50,000 NSMC test reviews, all layers, to HDF5 (sentences/s, words/s, peak RSS),
  float32, int8 (`load(..., quantize=True)`) and bf16 (`precision="bf16"`) alternating, with their speed-ups;
- memory against corpus size: peak RSS of pretraining over the NSMC corpus and over it concatenated ten times.

Every figure is the median of several runs, with min and max. The machine is shared and noisy: compare
figures only as ratios taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("CONTEXTEMB_DATA", REPO.parent / "shared" / "data"))
NSMC_CORPUS = DATA / "nsmc" / "corpus.txt"
NSMC_TEST = DATA / "nsmc" / "ratings_test.tsv"


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": len(values)}


def fmt(stats: dict, digits: int = 0) -> str:
    return f"{stats['median']:,.{digits}f} (min {stats['min']:,.{digits}f}, max {stats['max']:,.{digits}f}, n={stats['runs']})"


# ---------------------------------------------------------------------------------------------
# yardsticks


def matmul_gflops(repeats: int, dtype: torch.dtype = torch.float32) -> dict:
    """Rate of a 2048^3 matrix product in `dtype` (float32, bfloat16, or int8 via torch._int_mm), G(FL)OP/s."""
    if dtype == torch.int8:
        a, b = (torch.randint(-100, 100, (2048, 2048), dtype=torch.int8) for _ in range(2))
        product = torch._int_mm
    else:
        a, b = (torch.randn(2048, 2048, dtype=dtype) for _ in range(2))
        product = torch.matmul
    for _ in range(3):
        product(a, b)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        product(a, b)
        rates.append(2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9)
    return summary(rates)


def plain_lstm_step(repeats: int, steps: int = 20) -> dict:
    """tokens/s of a plain nn.LSTM LM training step with the default config's sizes (2,048 tokens per batch)."""
    torch.manual_seed(0)
    vocab, batch, seq = 8000, 32, 64
    embedding = nn.Embedding(vocab, 256)
    lstm = nn.LSTM(256, 512, num_layers=2, proj_size=256, batch_first=True)
    softmax = nn.AdaptiveLogSoftmaxWithLoss(256, vocab, cutoffs=[1000, 4000], div_value=4.0)
    params = [*embedding.parameters(), *lstm.parameters(), *softmax.parameters()]
    optimizer = torch.optim.Adam(params, 1e-3)
    inputs, targets = torch.randint(0, vocab, (batch, seq)), torch.randint(0, vocab, (batch, seq))
    rates = []
    for _ in range(repeats):
        times = []
        for step in range(steps + 3):
            start = time.perf_counter()
            states, _ = lstm(embedding(inputs))
            loss = softmax(states.reshape(-1, 256), targets.reshape(-1)).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if step >= 3:
                times.append(time.perf_counter() - start)
        rates.append(batch * seq / statistics.median(times))
    return summary(rates)


# ---------------------------------------------------------------------------------------------
# contextemb pretraining


def slice_corpus(lines: int, directory: Path) -> Path:
    path = directory / "corpus.txt"
    with open(NSMC_CORPUS, encoding="utf-8") as source, open(path, "w", encoding="utf-8") as out:
        for index, line in enumerate(source):
            if index >= lines:
                break
            out.write(line)
    return path


def flops_per_step(model_dir: Path, corpus: Path) -> tuple[float, int]:
    """FLOPs of one training step (forward + backward) of the forward model on a real batch, and its pieces."""
    from torch.utils.flop_counter import FlopCounterMode

    from contextemb.config import read_config
    from contextemb.model_dir import build_language_model
    from contextemb.pretrain.data import BatchStream
    from contextemb.tokenization import Tokenizer

    config = read_config(model_dir / "config.json")
    tokenizer = Tokenizer.from_file(model_dir / "tokenizer.model")
    model = build_language_model(config, tokenizer).train()
    stream = BatchStream(corpus, tokenizer, "forward", max_pieces=config.lm.max_pieces,
                         batch_tokens=config.train.batch_tokens, bucket_batches=config.train.bucket_batches, seed=0)
    batch, _ = next(iter(stream))
    counter = FlopCounterMode(display=False)
    with counter:
        loss = model(batch.piece_ids, batch.targets)
        loss.mean.backward()
    return float(counter.get_total_flops()), loss.count


def baseline_tree(commit: str, directory: Path) -> tuple[list[str], dict[str, str]]:
    """Check out `commit` (the package as it was) into `directory`; the command prefix and environment that run it.

    The old `contextemb` is laid out as installed (cli/, pretrain/, evaluation/ inside the package) and put
    first on the path of a Python started with -S, so the editable install of the current tree stays out.
    """
    archive = subprocess.run(["git", "archive", commit], cwd=REPO, check=True, capture_output=True).stdout
    source = directory / "source"
    source.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
    package = directory / "path" / "contextemb"
    shutil.copytree(source / "contextemb", package)
    for part in ("cli", "pretrain", "evaluation"):
        shutil.copytree(source / part, package / part)
    import sysconfig

    path = os.pathsep.join([str(directory / "path"), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    return [sys.executable, "-S", "-m", "contextemb.cli.main"], {**os.environ, "PYTHONPATH": path}


def pretraining(repeats: int, steps: int, lines: int, baseline: str | None = None) -> dict:
    """Pieces/s of the default configuration, both directions in parallel, via the CLI in a fresh process.

    Variants, run in turn in each repeat: this tree in float32 and with --precision bf16, and, given a
    baseline commit, that commit's code (float32) -- the side-by-side speed-up over a first version.
    """
    from contextemb.tokenization import Tokenizer

    work = Path(tempfile.mkdtemp(prefix="contextemb-bench-"))
    try:
        corpus = slice_corpus(lines, work)
        current = [sys.executable, "-m", "contextemb.cli.main"]
        variants = {"float32": (current, None, []), "bf16": (current, None, ["--precision", "bf16"])}
        if baseline:
            prefix, env = baseline_tree(baseline, work / "baseline")
            variants = {f"baseline {baseline} float32": (prefix, env, []), **variants}
        rates: dict[str, dict[str, list[float]]] = {name: {"forward": [], "backward": [], "total": []}
                                                    for name in variants}
        for run in range(repeats):
            for name, (prefix, env, extra) in variants.items():
                out = work / f"model-{run}-{len(rates[name]['total'])}-{name.split()[-1]}-{name.count(' ')}"
                command = [*prefix, "-q", "pretrain", str(corpus), "--out", str(out), "--max-steps", str(steps),
                           "--no-progress", "--log-every", "10", "--eval-every", "100000",
                           "--checkpoint-every", "100000", *extra]
                subprocess.run(command, check=True, cwd=work, env=env)
                records = [json.loads(line) for line in open(out / "metrics.jsonl")]
                run_total = 0.0
                for direction in ("forward", "backward"):
                    # skip the first report (warm-up: allocator, first pool's tokenisation)
                    timed = [r for r in records if r["direction"] == direction and "loss" in r and r["step"] > 10]
                    rate = sum(r["tokens_per_s"] for r in timed) / len(timed)
                    rates[name][direction].append(rate)
                    run_total += rate
                rates[name]["total"].append(run_total)
        model_dir = next(work.glob("model-0-*-float32-0"))
        tokenizer = Tokenizer.from_file(model_dir / "tokenizer.model")
        texts = [line.strip() for line in open(corpus, encoding="utf-8") if line.strip()]
        pieces = sum(len(ids) + 1 for ids in tokenizer.encode(texts))  # + </s> per line
        characters = sum(len(text) + 1 for text in texts)  # + the line break
        step_flops, step_pieces = flops_per_step(model_dir, corpus)
        results = {"chars_per_piece": characters / pieces, "flops_per_piece": step_flops / step_pieces,
                   "steps": steps, "corpus_lines": lines,
                   "variants": {name: {key: summary(values) for key, values in per.items()}
                                for name, per in rates.items()}}
        if baseline:
            base = rates[f"baseline {baseline} float32"]["total"]
            results["speedup_over_baseline"] = {name: summary([a / b for a, b in zip(rates[name]["total"], base)])
                                                for name in ("float32", "bf16")}
        results.update({key: results["variants"]["float32"][key] for key in ("forward", "backward", "total")})
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# embedding


def embedding(repeats: int, model: str, limit: int | None, variants=("float32", "int8", "bf16")) -> dict:
    """Embed the NSMC test reviews to HDF5 (all layers) in a fresh process; peak RSS of that process.

    The float32, int8 (`quantize=True`) and bf16 (`precision="bf16"`) paths alternate run by run, so their
    ratios are side by side.
    """
    work = Path(tempfile.mkdtemp(prefix="contextemb-bench-"))
    try:
        source = work / "reviews.txt"
        with open(NSMC_TEST, encoding="utf-8") as tsv, open(source, "w", encoding="utf-8") as out:
            next(tsv)
            for index, row in enumerate(tsv):
                if limit is not None and index >= limit:
                    break
                out.write(row.rstrip("\n").split("\t")[1] + "\n")
        lines = sum(1 for _ in open(source, encoding="utf-8"))
        words = sum(len(line.split()) for line in open(source, encoding="utf-8"))
        seconds: dict[str, list[float]] = {v: [] for v in variants}
        rss: dict[str, list[float]] = {v: [] for v in variants}
        for run in range(repeats):
            for variant in variants:
                code = ("import resource, sys, time, contextemb; from contextemb.export import export_embeddings; "
                        "t = time.perf_counter(); emb = contextemb.load(sys.argv[1], quantize=sys.argv[4] == 'int8', "
                        "precision='bf16' if sys.argv[4] == 'bf16' else 'float32'); "
                        "export_embeddings(emb, sys.argv[2], sys.argv[3], layers='all', force=True, progress=False); "
                        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
                result = subprocess.run([sys.executable, "-c", code, model, str(source), str(work / "out.h5"), variant],
                                        check=True, capture_output=True, text=True, cwd=REPO)
                elapsed, maxrss_kb = result.stdout.split()
                seconds[variant].append(float(elapsed))
                rss[variant].append(int(maxrss_kb) / 1024)
        results = {"sentences": lines, "words": words}
        for variant in variants:
            results[variant] = {"seconds": summary(seconds[variant]),
                                "sentences_per_s": summary([lines / s for s in seconds[variant]]),
                                "words_per_s": summary([words / s for s in seconds[variant]]),
                                "peak_rss_mb": summary(rss[variant])}
        results["speedup"] = {variant: summary([a / b for a, b in zip(seconds[variants[0]], seconds[variant])])
                              for variant in variants[1:]}
        return results
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# memory against corpus size


def _peak_rss_of(command: list[str]) -> float:
    """Run `command` in a fresh process tree; the largest peak RSS (MB) among its processes."""
    code = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    result = subprocess.run([sys.executable, "-c", code, *command], check=True, capture_output=True, text=True,
                            cwd=REPO)
    return int(result.stdout.split()[-1]) / 1024


def memory_vs_corpus(repeats: int, steps: int, lines: int | None) -> dict:
    """Peak RSS of forward-model pretraining over the corpus and over it concatenated ten times.

    The tokenizer is trained once, on the corpus (its peak RSS reported apart); each measured run starts
    from that tokenizer (`--resume` on a directory with no checkpoint) and trains `steps` steps.
    """
    work = Path(tempfile.mkdtemp(prefix="contextemb-bench-"))
    try:
        once = slice_corpus(lines, work) if lines else Path(NSMC_CORPUS)
        tenfold = work / "corpus-x10.txt"
        with open(tenfold, "wb") as out:
            for _ in range(10):
                with open(once, "rb") as source:
                    shutil.copyfileobj(source, out)
        cli = [sys.executable, "-m", "contextemb.cli.main", "-q", "pretrain"]
        base = work / "base"
        tokenizer_rss = _peak_rss_of(cli + [str(once), "--out", str(base), "--direction", "forward", "--max-steps", "1",
                                            "--no-progress"])
        measured: dict[str, list[float]] = {"corpus": [], "corpus x10": []}
        for run in range(repeats):
            for name, corpus in (("corpus", once), ("corpus x10", tenfold)):
                out = work / f"run-{run}-{name.replace(' ', '')}"
                out.mkdir()
                for kept in ("config.json", "tokenizer.model"):
                    shutil.copy(base / kept, out / kept)
                measured[name].append(_peak_rss_of(
                    cli + [str(corpus), "--out", str(out), "--resume", "--direction", "forward", "--max-steps",
                           str(steps), "--no-progress", "--eval-every", "100000", "--checkpoint-every", "100000"]))
        return {"corpus_mb": once.stat().st_size / 2**20, "corpus_x10_mb": tenfold.stat().st_size / 2**20,
                "tokenizer_peak_rss_mb": tokenizer_rss, "steps": steps,
                "peak_rss_mb": {name: summary(values) for name, values in measured.items()}}
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and steps")
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    parser.add_argument("--only", default="matmul,lstm,pretrain,embed,memory")
    parser.add_argument("--model", default="ko-nsmc-small", help="model for the embedding benchmark")
    parser.add_argument("--baseline", help="a git commit whose pretraining runs beside this tree's (speed-up)")
    args = parser.parse_args()
    parts = set(args.only.split(","))
    repeats = 1 if args.quick else 3
    results: dict = {"machine": {"cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                                 "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M")}}
    if "matmul" in parts:
        results["matmul_gflops"] = matmul_gflops(10 if args.quick else 30)
        results["matmul_bf16_gflops"] = matmul_gflops(10 if args.quick else 30, torch.bfloat16)
        results["matmul_int8_gops"] = matmul_gflops(10, torch.int8)
    if "lstm" in parts:
        results["plain_lstm_tokens_per_s"] = plain_lstm_step(repeats)
    if "pretrain" in parts:
        results["pretrain"] = pretraining(repeats, steps=40 if args.quick else 80, lines=20000, baseline=args.baseline)
    if "embed" in parts:
        results["embed"] = embedding(repeats, args.model, 5000 if args.quick else None)
    if "memory" in parts:
        results["memory"] = memory_vs_corpus(repeats, steps=20 if args.quick else 60,
                                             lines=20000 if args.quick else None)

    print(f"\nmachine: {results['machine']}\n")
    print("| what | median (min, max, runs) |\n|---|---|")
    if "matmul_gflops" in results:
        print(f"| float32 matmul 2048^3, GFLOP/s | {fmt(results['matmul_gflops'], 1)} |")
        print(f"| bf16 matmul 2048^3, GFLOP/s | {fmt(results['matmul_bf16_gflops'], 1)} |")
        print(f"| int8 torch._int_mm 2048^3, GOP/s | {fmt(results['matmul_int8_gops'], 1)} |")
    if "plain_lstm_tokens_per_s" in results:
        print(f"| plain nn.LSTM LM step (default sizes, 2,048 tokens, one process), tokens/s | "
              f"{fmt(results['plain_lstm_tokens_per_s'])} |")
    if "pretrain" in results:
        p = results["pretrain"]
        cpp = p["chars_per_piece"]
        for name, variant in p["variants"].items():
            if name != "float32":
                print(f"| pretraining, both in parallel, {name}, pieces/s | {fmt(variant['total'])} |")
        for name, ratio in p.get("speedup_over_baseline", {}).items():
            print(f"| pretraining {name} / baseline, pieces/s (pairwise, same run) | {fmt(ratio, 2)} |")
        print(f"| pretraining, forward, pieces/s | {fmt(p['forward'])} |")
        print(f"| pretraining, backward, pieces/s | {fmt(p['backward'])} |")
        print(f"| pretraining, both in parallel, pieces/s | {fmt(p['total'])} |")
        print(f"| pretraining, both in parallel, characters/s ({cpp:.2f} chars/piece) | "
              f"{p['total']['median'] * cpp:,.0f} |")
        gflops = p["total"]["median"] * p["flops_per_piece"] / 1e9
        print(f"| training FLOPs per piece (forward + backward, counted) | {p['flops_per_piece'] / 1e6:.2f} M |")
        print(f"| achieved GFLOP/s, both directions | {gflops:.1f} |")
        if "matmul_gflops" in results:
            print(f"| achieved / matmul rate | {gflops / results['matmul_gflops']['median']:.1%} |")
        if "plain_lstm_tokens_per_s" in results:
            print(f"| pieces/s, both directions / plain nn.LSTM step | "
                  f"{p['total']['median'] / results['plain_lstm_tokens_per_s']['median']:.2f} |")
    if "embed" in results:
        e = results["embed"]
        for variant in ("float32", "int8", "bf16"):
            if variant not in e:
                continue
            v = e[variant]
            print(f"| embed {e['sentences']:,} NSMC test reviews to HDF5 (all layers), {variant}, seconds | "
                  f"{fmt(v['seconds'], 1)} |")
            print(f"| embed, {variant}, sentences/s | {fmt(v['sentences_per_s'])} |")
            print(f"| embed, {variant}, words/s | {fmt(v['words_per_s'])} |")
            print(f"| embed, {variant}, peak RSS, MB | {fmt(v['peak_rss_mb'])} |")
        for variant, ratio in e.get("speedup", {}).items():
            print(f"| embed, {variant} speed-up over float32 (same run, pairwise) | {fmt(ratio, 2)} |")
    if "memory" in results:
        m = results["memory"]
        print(f"| tokenizer training on the corpus ({m['corpus_mb']:,.1f} MB), peak RSS, MB | "
              f"{m['tokenizer_peak_rss_mb']:,.0f} |")
        for name, size in (("corpus", m["corpus_mb"]), ("corpus x10", m["corpus_x10_mb"])):
            print(f"| pretraining {m['steps']} steps (forward) over the {name} ({size:,.1f} MB), peak RSS, MB | "
                  f"{fmt(m['peak_rss_mb'][name])} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
