"""Command line: ``python -m slmlab train CONFIG``, ``ship``, ``sweep EXPERIMENT`` and
``bench``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m slmlab", description="Small Language Models, hands-on: tools"
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser(
        "train", help="train a TinyLM from a JSON run config (resumes from OUT_DIR/checkpoint)"
    )
    t.add_argument("config", help="path to a run config JSON (see configs/)")
    t.add_argument(
        "--out-dir",
        help="where checkpoints, logs and the final model go (default runs/<config name>)",
    )
    t.add_argument("--max-steps", type=int, help="override train.max_steps")
    t.add_argument(
        "--no-resume", action="store_true", help="start over even if a checkpoint exists"
    )
    s = sub.add_parser(
        "ship", help="evaluate a finished run and copy it into data/reference/NAME with a manifest"
    )
    s.add_argument("run_dir", help="the out_dir of a finished `python -m slmlab train` run")
    s.add_argument("name", help="reference model name, e.g. base or small")
    s.add_argument(
        "--n-per-task", type=int, default=500, help="probe items per task for the shipped metrics"
    )
    w = sub.add_parser(
        "sweep",
        help="train every run of an experiment config (configs/experiments/NAME.json) and write "
        "its results to data/experiments/NAME",
    )
    w.add_argument("experiment", help="path to an experiment JSON (see configs/experiments/)")
    w.add_argument("--out-dir", help="where the results go (default data/experiments/NAME)")
    w.add_argument("--only", nargs="+", metavar="RUN", help="train only these runs")
    w.add_argument("--max-steps", type=int, help="shorten every run (a smoke test)")
    b = sub.add_parser(
        "bench", help="TinyLM vs transformers: training and decode throughput, achieved FLOP/s"
    )
    b.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    hub = b.add_mutually_exclusive_group()
    hub.add_argument(
        "--checkpoint",
        metavar="DIR",
        help="instead: generate of this transformers save_pretrained directory (Llama family), "
        "loaded by transformers and by slmlab.from_hf",
    )
    hub.add_argument(
        "--config",
        metavar="CONFIG_JSON",
        help="instead: generate of a random model of this transformers config.json (e.g. "
        "tests/fixtures/hf_configs/smollm2-135m/config.json), saved to a temporary directory",
    )
    b.add_argument(
        "--new-tokens",
        type=int,
        nargs="+",
        default=[8, 128],
        metavar="N",
        help="with --checkpoint/--config: the numbers of new tokens to generate (default 8 128)",
    )
    b.add_argument(
        "--reps", type=int, help="repetitions of each timed call (default 5, 2 with --quick)"
    )
    args = p.parse_args(argv)
    if args.cmd == "train":
        from .train import main_train

        main_train(
            args.config, out_dir=args.out_dir, max_steps=args.max_steps, resume=not args.no_resume
        )
    elif args.cmd == "ship":
        import json

        from .reference import evaluate_run, ship

        metrics = evaluate_run(args.run_dir, n_per_task=args.n_per_task)
        print(json.dumps(metrics, indent=1))
        print(ship(args.run_dir, args.name, metrics))
    elif args.cmd == "sweep":
        from .train.sweep import load_experiment, run_experiment

        run_experiment(
            load_experiment(args.experiment),
            out_dir=args.out_dir,
            only=args.only,
            max_steps=args.max_steps,
        )
    elif args.cmd == "bench":
        from .runtime.bench import main as bench_main

        bench_main(
            quick=args.quick,
            checkpoint=args.checkpoint,
            config=args.config,
            new_tokens=tuple(args.new_tokens),
            reps=args.reps,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
