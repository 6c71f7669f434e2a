"""Training speed of mmoe-tf's ``mmoe`` with its experts in groups (the default) against other group counts.

The model is the peer benchmark's (``bench/peer_throughput.py``: ``simulate_ctr_table``, 16 numeric + 4 categorical
features, 8 experts × 64 units, linear gates, towers 32, Adam 1e-3) exactly as ``build_model`` returns it, trained
through ``data.make_dataset(repeat=True)`` as the CLI trains; the only difference between the contenders is the MMoE
block's ``expert_groups`` (``--groups``: ``auto`` is ``None``, the automatic choice, one group per expert for 8
experts; ``1`` is one GEMM and one mixing per gate over all experts; ``4`` the previous automatic choice, groups of
two experts). TensorFlow runs one thread per op and all cores for inter-op, as in the peer benchmark. Rounds of
``--epochs`` epochs alternate the contenders (reversed every other round); figures are medians, speed-ups are paired
per round against the first contender.

Usage:
    .venv/bin/python bench/expert_groups_real.py [--batch-sizes 256 512 2048] [--groups 1 4 auto] [--rounds 7]
    .venv/bin/python bench/expert_groups_real.py --num-experts 32 --groups 4 32 1 --batch-sizes 512 2048

The last printed line is one JSON object with the figures and ratios.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from fit_rounds import timed_rounds

import mmoe_tf  # sets up the Keras 2 API before TensorFlow loads
from data import batches_per_pass, feature_arrays, make_dataset
from data.generators import simulate_ctr_table


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 512, 2048])
    p.add_argument("--rows", type=int, default=160_000)
    p.add_argument("--epochs", type=int, default=2, help="epochs per timed round")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--num-experts", type=int, default=8)
    p.add_argument("--groups", nargs="+", default=["1", "auto"], help="contenders: group counts or 'auto'")
    args = p.parse_args(argv)
    contenders = {_name(g): None if g == "auto" else int(g) for g in args.groups}
    threads = mmoe_tf.configure_cpu_threads(1, 0)
    df, schema = simulate_ctr_table(n_rows=args.rows, seed=0)
    adapt = feature_arrays(df, schema)
    config = schema.model_config(
        architecture="mmoe", num_experts=args.num_experts, expert_units=(64,), tower_units=(32,), learning_rate=1e-3
    )
    by_batch = {}
    for batch in args.batch_sizes:
        dataset = make_dataset(df, schema, batch_size=batch, shuffle=True, seed=0, repeat=True)
        steps = batches_per_pass(len(df), batch)
        models = {}
        for name, groups in contenders.items():
            model = mmoe_tf.build_model(config, adapt_data=adapt)
            block = next(layer for layer in model.layers if layer.name.startswith("mmoe"))
            block.expert_groups = groups  # read when the train step is traced
            model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)  # trace and warm up
            models[name] = (model, block._groups())
        runs = {
            name: functools.partial(model.fit, dataset, epochs=args.epochs, steps_per_epoch=steps, verbose=0)
            for name, (model, _) in models.items()
        }
        wall, cpu = timed_rounds(runs, args.rounds)
        examples = args.epochs * steps * batch
        first = next(iter(models))
        row = {
            name: {
                "groups": models[name][1],
                "examples_per_s": round(examples / statistics.median(wall[name])),
                "cpu_us_per_example": round(1e6 * statistics.median(cpu[name]) / examples, 2),
            }
            for name in models
        }
        for name in list(models)[1:]:
            rounds = [a / b for a, b in zip(wall[first], wall[name], strict=True)]
            key = "" if (first, name) == ("one_group", "groups_auto") else f"_{name}_vs_{first}"
            row[f"speedup_paired{key}"] = round(statistics.median(rounds), 3)
            row[f"speedup_rounds{key}"] = [round(x, 2) for x in rounds]
        print(f"batch {batch}: {row}", flush=True)
        by_batch[str(batch)] = row
    result = {
        "benchmark": "expert_groups_real",
        "unit": "training examples/s through make_dataset (median of alternated rounds)",
        "by_batch_size": by_batch,
        "settings": {
            "num_experts": args.num_experts,
            "groups": args.groups,
            "rows": args.rows,
            "epochs_per_round": args.epochs,
            "rounds": args.rounds,
            "threads": threads,
        },
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))
    return result


def _name(groups: str) -> str:
    """The contender's key in the JSON: ``groups_auto``, ``one_group`` or ``groups_<G>``."""
    return "groups_auto" if groups == "auto" else "one_group" if groups == "1" else f"groups_{int(groups)}"


if __name__ == "__main__":
    main()
