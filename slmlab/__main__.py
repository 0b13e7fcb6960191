"""Command line: ``python -m slmlab train CONFIG`` and ``python -m slmlab bench``."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m slmlab", description="Small Language Models, hands-on: tools")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a TinyLM from a JSON run config (resumes from OUT_DIR/checkpoint)")
    t.add_argument("config", help="path to a run config JSON (see configs/)")
    t.add_argument("--out-dir", help="where checkpoints, logs and the final model go (default runs/<config name>)")
    t.add_argument("--max-steps", type=int, help="override train.max_steps")
    t.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    b = sub.add_parser("bench", help="TinyLM vs transformers: training and decode throughput, achieved FLOP/s")
    b.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    args = p.parse_args(argv)
    if args.cmd == "train":
        from .train import main_train

        main_train(args.config, out_dir=args.out_dir, max_steps=args.max_steps, resume=not args.no_resume)
    elif args.cmd == "bench":
        from .bench import main as bench_main

        bench_main(quick=args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
