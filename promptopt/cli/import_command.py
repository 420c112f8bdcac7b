"""`promptopt import`: a PEFT prompt-tuning or prefix-tuning adapter as a promptopt file."""


def add_arguments(parser):
    parser.add_argument("--peft", required=True,
                        help="folder with adapter_config.json and adapter_model.safetensors "
                        "(PeftModel.save_pretrained), prompt or prefix tuning")
    parser.add_argument("--output", required=True,
                        help="the promptopt file to write (e.g. out/prompt.npz or out/prefix.npz)")
    parser.add_argument("--model", required=True,
                        help="the promptopt model the adapter was tuned on (e.g. smollm2-135m); "
                        "its identity is stamped into the file")
    task = parser.add_argument_group(
        "task", "what eval and predict classify with the imported prompt (PEFT's files do not "
        "say); without these the file is stamped for language modeling")
    task.add_argument("--task", choices=("sst2", "sst5", "trec"),
                      help="a built-in task's template and label words")
    task.add_argument("--template", help="e.g. '{sentence} It was' (overrides --task's)")
    task.add_argument("--label-words", help="'0=terrible,1=great' (overrides --task's)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logging")


def run_import(args, log=print):
    from promptopt.cli.quiet_startup import import_quietly

    import_quietly(verbose=args.verbose)
    from promptopt.adapters import adapter_for
    from promptopt.hub import load_language_model
    from promptopt.interop.peft_adapter import PREFIX_TUNING
    from promptopt.interop.peft_adapter import PEFTAdapter
    from promptopt.models import PromptedModel
    from promptopt.prefixes import PrefixModel

    peft = PEFTAdapter.load(args.peft)
    loaded = load_language_model(args.model)
    backbone_adapter = adapter_for(loaded.backbone)
    # Checked against the model before anything is built: token_dim must be its H.
    tensor = (peft.prefix(backbone_adapter) if peft.peft_type == PREFIX_TUNING
              else peft.prompt(backbone_adapter))
    length = tensor.shape[2] if peft.peft_type == PREFIX_TUNING else tensor.shape[0]
    task, template, label_words = _task(args, loaded.tokenizer)
    common = dict(tokenizer=loaded.tokenizer, model_id=loaded.model_id)
    extra = {"template": template, "label_words": label_words, "model_spec": args.model,
             "method": "peft", "placement": "prefix",
             "imported_from": {"format": "peft", "peft_type": peft.peft_type, "directory": args.peft,
                               "base_model_name_or_path": peft.config.get("base_model_name_or_path")}}
    if peft.peft_type == PREFIX_TUNING:
        model = PrefixModel(loaded.backbone, task, prefix_length=length,
                            prefix_initializer=tensor, **common)
        path = model.save_prefix(args.output, extra=extra)
    else:
        model = PromptedModel(loaded.backbone, task, prompt_length=length,
                              prompt_initializer=tensor, **common)
        path = model.save_prompt(args.output, extra=extra)
    purpose = (f"classification with the label words {label_words}" if label_words else
               "language modeling; give --task or --label-words to classify with it")
    log(f"Wrote the PEFT {peft.peft_type} adapter of {args.peft} ({length} virtual tokens) to "
        f"{path}, stamped for {loaded.model_id} ({purpose}).")
    return {"output": path, "peft_type": peft.peft_type}


def _task(args, tokenizer):
    """`(task, template, label_words)` from --task/--template/--label-words."""
    from promptopt.data import get_fewshot_task
    from promptopt.data.label_words import parse_label_words
    from promptopt.tasks import LanguageModeling
    from promptopt.tasks import Verbalizer
    from promptopt.tasks import VerbalizerClassification

    template, label_words = args.template, None
    if args.task:
        fewshot = get_fewshot_task(args.task)
        template = template or fewshot.template
        label_words = {c: list(w) for c, w in fewshot.label_words.items()}
    if args.label_words:
        label_words = parse_label_words(args.label_words, template or "")
    if label_words is None:
        if template:
            raise ValueError("--template needs --label-words (or --task) to classify with.")
        return LanguageModeling(), None, None
    verbalizer = Verbalizer(list(label_words), label_words, tokenizer)
    # PEFT puts the prompt in front of the input: promptopt's "prefix" placement.
    return VerbalizerClassification(verbalizer, placement="prefix"), template, label_words
