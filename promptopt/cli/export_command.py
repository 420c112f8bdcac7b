"""`promptopt export`: a tuned prompt or prefix in PEFT's adapter format."""


def add_arguments(parser):
    parser.add_argument("--prompt", required=True,
                        help="prompt.npz or prefix.npz written by promptopt tune")
    parser.add_argument("--format", required=True, choices=("peft",),
                        help="peft: adapter_config.json + adapter_model.safetensors, which "
                        "peft.PeftModel.from_pretrained loads")
    parser.add_argument("--output-dir", required=True,
                        help="folder to write the two files into (created if missing)")
    parser.add_argument("--base-model",
                        help="base_model_name_or_path written into the config (default: the "
                        "Hugging Face name of the prompt's model, e.g. "
                        "HuggingFaceTB/SmolLM2-135M-Instruct)")
    parser.add_argument("--model", help="override the model saved with the prompt")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logging")


def run_export(args, log=print):
    if str(args.prompt).endswith(".json"):
        raise ValueError(
            f"{args.prompt} is a text prompt: it is plain text (its 'text' field), which needs "
            "no adapter. Export a prompt.npz or prefix.npz.")
    from promptopt.cli.quiet_startup import import_quietly

    import_quietly(verbose=args.verbose)
    from promptopt.interop.peft_adapter import PEFTAdapter
    from promptopt.interop.peft_adapter import hub_name
    from promptopt.prefixes import PrefixFile
    from promptopt.prefixes import PrefixModel
    from promptopt.prompts import PromptFile
    from promptopt.tuning.saved_prompt import SavedPrompt

    # Loading it into its model refuses a file made for another model.
    model = SavedPrompt.load(args.prompt, model_spec=args.model).model
    base_model = args.base_model or hub_name(model.model_id)
    if isinstance(model, PrefixModel):
        adapter = PEFTAdapter.for_prefix(PrefixFile.load(args.prompt).prefix, model.adapter,
                                         base_model)
    else:
        if model.task.placement != "prefix":
            raise ValueError(
                f"{args.prompt} was tuned with placement {model.task.placement!r} (after the "
                "input), but PEFT always puts the prompt before the input, where this one would "
                "mean something else. Tune with --placement prefix to export to PEFT.")
        adapter = PEFTAdapter.for_prompt(PromptFile.load(args.prompt).prompt, model.adapter,
                                         base_model)
    config_path, weights_path = adapter.save(args.output_dir)
    log(f"Wrote a PEFT {adapter.peft_type} adapter ({adapter.config['num_virtual_tokens']} virtual "
        f"tokens, base model {base_model}) to {config_path} and {weights_path}. Load it with "
        f"peft.PeftModel.from_pretrained(model, {args.output_dir!r}).")
    return {"config": config_path, "weights": weights_path, "peft_type": adapter.peft_type}
