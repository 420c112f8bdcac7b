"""`promptopt predict`: the class and class probabilities of unlabelled texts."""

import csv
import json
import os

from promptopt.cli.eval_command import add_data_arguments
from promptopt.cli.eval_command import load_saved


def add_arguments(parser):
    parser.add_argument("--prompt", required=True,
                        help="prompt.npz, prefix.npz or prompt.json written by promptopt tune")
    parser.add_argument("--output", required=True,
                        help="predictions file: .csv or .jsonl (one row per input row)")
    add_data_arguments(parser, labelled=False)


def run_predict(args, log=print):
    from promptopt.data.table_reader import read_table
    from promptopt.data.template import Template

    extension = os.path.splitext(args.output)[1].lower()
    if extension not in (".csv", ".jsonl"):
        raise ValueError(f"--output must end in .csv or .jsonl, got {args.output!r}.")
    saved = load_saved(args)
    template = Template(args.template or saved.template or "")
    if args.task:
        from promptopt.cli.eval_command import labelled_data

        texts = labelled_data(args, saved).texts
    else:
        if not args.data:
            raise ValueError("Give the texts to classify: --data FILE or --task NAME.")
        texts = [template.format(record) for record in read_table(args.data)]
    probabilities = saved.probabilities(texts, args.batch_size)
    classes = list(saved.classes)
    rows = [
        {"row": i, "class": classes[int(p.argmax())],
         **{f"p_{c}": round(float(v), 6) for c, v in zip(classes, p)}}
        for i, p in enumerate(probabilities)
    ]
    temporary = f"{args.output}.tmp-{os.getpid()}"
    with open(temporary, "w", newline="") as f:
        if extension == ".csv":
            writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["row", "class"])
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    os.replace(temporary, args.output)
    log(f"Wrote {len(rows)} predictions to {args.output}.")
    return rows
