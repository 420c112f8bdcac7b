"""`promptopt eval`: accuracy of a saved prompt or prefix on a labelled file."""

import json


def add_arguments(parser):
    parser.add_argument("--prompt", required=True, action="append",
                        help="prompt.npz, prefix.npz or prompt.json written by promptopt tune; "
                        "repeat it with prompt.npz files of one task to score their ensemble")
    parser.add_argument("--ensemble", default="mean", choices=("mean", "vote"),
                        help="with several --prompt: mean class probability (default) or "
                        "majority vote (ties go to the higher mean probability, then the first class)")
    add_data_arguments(parser, labelled=True)


def add_data_arguments(parser, labelled):
    data = parser.add_argument_group("data")
    data.add_argument("--data", help="CSV, TSV or JSONL file of examples")
    data.add_argument("--task", choices=("sst2", "sst5", "trec"),
                      help="a built-in 16-shot task instead of --data")
    data.add_argument("--split", default="test", choices=("train", "dev", "test"),
                      help="which split of --task (default test)")
    data.add_argument("--fewshot-seed", type=int, default=42)
    data.add_argument("--data-dir", help="folder holding lmbff_16shot/ (default ../shared/data)")
    data.add_argument("--template", help="override the template saved with the prompt")
    if labelled:
        data.add_argument("--label-column", default="label")
    model = parser.add_argument_group("model")
    model.add_argument("--model", help="override the model saved with the prompt")
    model.add_argument("--dtype", choices=("float32", "bfloat16"),
                       help="precision to score in (default: the one the prompt was tuned in)")
    model.add_argument("--max-length", type=int, default=128)
    model.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logging")


def load_saved(args):
    """A `SavedPrompt`, or a `PromptEnsemble` when eval got several --prompt."""
    from promptopt.cli.quiet_startup import import_quietly

    import_quietly(verbose=args.verbose)
    from promptopt.tuning.saved_prompt import SavedPrompt
    from promptopt.tuning.saved_prompt import load_ensemble

    prompts = args.prompt if isinstance(args.prompt, list) else [args.prompt]
    if len(prompts) > 1:
        return load_ensemble(prompts, model_spec=args.model, dtype=args.dtype,
                             max_length=args.max_length, combine=args.ensemble)
    return SavedPrompt.load(prompts[0], model_spec=args.model, dtype=args.dtype,
                            max_length=args.max_length)


def labelled_data(args, saved):
    """The labelled examples to score, rendered by the prompt's template."""
    from promptopt.data import get_fewshot_task
    from promptopt.data import load_classification_file
    from promptopt.data import load_fewshot_split

    template = args.template or saved.template
    if args.task:
        task = get_fewshot_task(args.task)
        return load_fewshot_split(task, args.fewshot_seed, args.split,
                                  template=template or task.template, data_dir=args.data_dir)
    if not args.data:
        raise ValueError("Give the examples to score: --data FILE or --task NAME.")
    if not template:
        raise ValueError("This prompt file has no template; give --template '{sentence} It was'.")
    return load_classification_file(args.data, template, label_column=args.label_column,
                                    classes=saved.classes)


def run_eval(args, log=print):
    import numpy as np

    saved = load_saved(args)
    data = labelled_data(args, saved)
    if tuple(data.classes) != tuple(saved.classes):
        raise ValueError(
            f"The data's classes {list(data.classes)} are not the prompt's {list(saved.classes)}. "
            "Score a file with the labels the prompt was tuned on.")
    prompts = args.prompt if isinstance(args.prompt, list) else [args.prompt]
    ensemble = None
    if len(prompts) > 1:
        ensemble, members = saved, saved.member_probabilities(data.texts, args.batch_size)
        probabilities, predictions = ensemble.combine_members(members, ensemble.combine)
    else:
        probabilities = saved.probabilities(data.texts, args.batch_size)
        predictions = probabilities.argmax(axis=-1)
    accuracy = float(np.mean(predictions == data.labels))
    per_class = {
        c: float(np.mean(predictions[data.labels == i] == i)) if np.any(data.labels == i) else None
        for i, c in enumerate(saved.classes)
    }
    # One --prompt reports exactly what it always did: its path as a string.
    result = {"prompt": prompts[0] if ensemble is None else prompts, "examples": len(data),
              "accuracy": accuracy, "per_class_recall": per_class}
    if ensemble is not None:
        result["ensemble"] = ensemble.combine
        result["member_accuracy"] = [float(np.mean(m.argmax(-1) == data.labels)) for m in members]
        log(f"Accuracy {accuracy:.4f} on {len(data)} examples (ensemble of {len(prompts)} "
            f"prompts by {ensemble.combine}; members "
            + ", ".join(f"{a:.4f}" for a in result["member_accuracy"]) + ").")
    else:
        log(f"Accuracy {accuracy:.4f} on {len(data)} examples ({prompts[0]}).")
    log(json.dumps(result))
    return result
