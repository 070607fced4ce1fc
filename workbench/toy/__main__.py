"""Command line for the teaching model.

    python -m workbench.toy train [--clips-per-genre N] [--decoder-steps N] [--output-dir DIR] ...
    python -m workbench.toy evaluate [--json PATH] [--weights DIR]
    python -m workbench.toy judge            # refit the shipped genre judge of a synthesiser version
"""

from __future__ import annotations

import argparse
import json
import sys

from workbench.analysis.teaching.evaluate import evaluate, format_table
from workbench.toy import WEIGHTS_DIR, synth_version
from workbench.toy.judge import JUDGE_V1_PATH, JUDGE_V2_PATH, fit_judge
from workbench.toy.training.recipe import Recipe, recipe_with, train_teaching_model


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m workbench.toy", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="rebuild the teaching model from scratch")
    train.add_argument("--output-dir", default=str(WEIGHTS_DIR),
                       help="save_pretrained folder (default: shipped weights)")
    train.add_argument("--work-dir", default=None,
                       help="checkpoints and log (default: ~/.cache/musicgen-workbench/toy-train)")
    train.add_argument("--resume", action="store_true",
                       help="reuse the codec in --work-dir when data and codec settings match")
    train.add_argument("--tiny", action="store_true", help="a seconds-long smoke run (tiny sizes)")
    train.add_argument("--synth-version", type=int, choices=(1, 2, 3), default=None,
                       help="3: the v3.1 candidate (Recipe.v3_1: synth_v3 clips, v3's codec); 2 alone: teaching model "
                            "v2's recipe (Recipe.v2); 1: teaching model v1's (Recipe.v1); default: the shipped "
                            "teaching model v3's (Recipe.v3, synthesiser 2)")
    train.add_argument("--codec-v3", action="store_true",
                       help="teaching codec v3's codec settings over the chosen recipe "
                            "(the default recipe, Recipe.v3, has them)")
    train.add_argument("--stage", choices=("codec", "all"), default="all",
                       help="codec: stop after the codec and save it (an EnCodec folder) in --output-dir")
    train.add_argument("--clips-per-genre", type=int, dest="n_per_genre")
    train.add_argument("--codec-ae-steps", type=int)
    train.add_argument("--codec-vq-steps", type=int)
    train.add_argument("--decoder-steps", type=int)
    train.add_argument("--decoder-batch-size", type=int)
    train.add_argument("--decoder-clips-per-genre", type=int,
                       help="clips per genre for the decoder, when more than the codec's --clips-per-genre")
    train.add_argument("--sample-temperature", type=float,
                       help="the temperature written into the generation config (what generate samples at)")
    train.add_argument("--judge-clips-per-genre", type=int,
                       help="clips per genre for the model's own genre judge (v2; 0: none)")
    train.add_argument("--decoder-resid-push", type=float,
                       help="train the decoder under random residual pushes up to this many x a layer's mean "
                            "residual norm (decoder_training.ResidualPushes; 0: none)")
    train.add_argument("--factor-keep", type=float,
                       help="v2 data: the chance a training prompt names each non-genre factor (default: "
                            "prompts.FACTOR_KEEP, 0.4-0.5)")
    train.add_argument("--seed", type=int)
    train.add_argument("--threads", type=int)
    train.add_argument("--device", default="cpu", help="cpu (the reference, 2 threads) or cuda")
    train.add_argument("--no-progress", action="store_true")

    ev = sub.add_parser("evaluate", help="measure the judge, codec, generation, probes and steering")
    ev.add_argument("--weights", default=None, help="model folder (default: the shipped weights)")
    ev.add_argument("--json", default=None, help="write the metrics here")
    ev.add_argument("--quick", action="store_true", help="fewer clips (a rough check in a minute)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--device", default=None, help="cpu or cuda (default: a GPU when torch sees one)")
    ev.add_argument("--direction-source", choices=("generated", "teacher_forced"), default="generated",
                    help="activations the steering directions come from")
    ev.add_argument("--synth-version", type=int, choices=(1, 2, 3), default=None,
                    help="clips to measure on (default: what the model was trained on)")
    ev.add_argument("--no-concepts", action="store_true", help="skip the per-concept protocol (v2 and v3 data)")

    jd = sub.add_parser("judge", help="refit the genre judge on fresh synthetic clips")
    jd.add_argument("--clips-per-genre", type=int, default=300)
    jd.add_argument("--output", default=None, help="JSON path (default: the shipped judge of that synthesiser version)")
    jd.add_argument("--synth-version", type=int, default=None, choices=(1, 2, 3),
                    help="1: workbench.toy.synth (judge_fitted_on_degraded_synth_v1.json), "
                         "2: synth_v2 (judge_fitted_on_synth_v2_reference_codec.json); "
                         "default: the shipped model's")

    args = parser.parse_args(argv)
    if args.command == "train":

        base = (Recipe.tiny() if args.tiny else Recipe.v1() if args.synth_version == 1
                else Recipe.v2() if args.synth_version == 2 else Recipe.v3_1() if args.synth_version == 3
                else Recipe.v3())
        if args.codec_v3:  # with --tiny: tiny sizes, codec v3's losses and residual units
            base = base.with_codec_v3()
        recipe = recipe_with(base, synth_version=args.synth_version, n_per_genre=args.n_per_genre,
                             codec_ae_steps=args.codec_ae_steps,
                             codec_vq_steps=args.codec_vq_steps, decoder_steps=args.decoder_steps,
                             decoder_batch_size=args.decoder_batch_size, seed=args.seed, threads=args.threads,
                             judge_clips_per_genre=args.judge_clips_per_genre,
                             decoder_clips_per_genre=args.decoder_clips_per_genre,
                             sample_temperature=args.sample_temperature,
                             decoder_resid_push=args.decoder_resid_push, factor_keep=args.factor_keep)
        info = train_teaching_model(recipe, args.output_dir, work_dir=args.work_dir, resume=args.resume,
                                    progress=not args.no_progress, device=args.device, stage=args.stage)
        print(json.dumps(info["timings_s"], indent=1))
        return 0
    if args.command == "evaluate":

        metrics = evaluate(args.weights, quick=args.quick, seed=args.seed, direction_source=args.direction_source,
                           device=args.device, synth_version=args.synth_version, concepts=not args.no_concepts)
        print(format_table(metrics))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(metrics, f, indent=1)
        return 0
    if args.command == "judge":

        version = args.synth_version or synth_version()
        if version == 3 and args.output is None:
            parser.error("--synth-version 3: pass --output (the shipped judges are fitted on synthesisers 1 and 2)")
        judge = fit_judge(n_per_genre=args.clips_per_genre, version=version)
        output = args.output or (JUDGE_V2_PATH if version == 2 else JUDGE_V1_PATH)
        judge.to_json(output)
        print(f"wrote {output}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
