"""Data sets and templates: the examples a prompt is optimized on.

- `Template`: "{sentence} It was" -> model input text.
- `read_table`: CSV / TSV / JSONL files -> rows.
- `ClassificationData`, `load_classification_file`: texts + int64 labels.
- `load_fewshot_split`, `FEWSHOT_TASKS`: the LM-BFF 16-shot SST-2/SST-5/TREC.
- `demo_task`: a tiny built-in sentiment task (no files).
- `GenerationData`, `load_e2e`, `load_generation_file`: source -> target text.
"""

from promptopt.data.classification_data import (
    ClassificationData,
    load_classification_file,
    sort_class_names,
)
from promptopt.data.demo_task import DEMO_TASK, demo_task
from promptopt.data.fewshot_splits import (
    DATA_DIR_ENV,
    FEWSHOT_SEEDS,
    FEWSHOT_SPLITS,
    FEWSHOT_TASKS,
    FewShotTask,
    default_data_dir,
    get_fewshot_task,
    load_fewshot_split,
    resolve_data_dir,
)
from promptopt.data.generation_data import (
    GenerationData,
    linearize_mr,
    load_e2e,
    load_generation_file,
    parse_mr,
)
from promptopt.data.table_reader import TABLE_FORMATS, infer_table_format, read_table
from promptopt.data.template import Template, as_template

__all__ = [
    "ClassificationData",
    "DATA_DIR_ENV",
    "DEMO_TASK",
    "FEWSHOT_SEEDS",
    "FEWSHOT_SPLITS",
    "FEWSHOT_TASKS",
    "FewShotTask",
    "GenerationData",
    "TABLE_FORMATS",
    "Template",
    "as_template",
    "default_data_dir",
    "demo_task",
    "get_fewshot_task",
    "infer_table_format",
    "linearize_mr",
    "load_classification_file",
    "load_e2e",
    "load_fewshot_split",
    "load_generation_file",
    "parse_mr",
    "read_table",
    "resolve_data_dir",
    "sort_class_names",
]
