"""The `devices` setting of a run, checked without importing Keras."""


def parse_devices(spec):
    """`"all"` or a positive int count from a `devices` setting.

    `spec` comes from a config file (int or str) or a flag (always str):
    `"all"`, an int, or a string of digits. None means no distribution and
    is the caller's to handle.

    Example:
    ```python
    parse_devices("4")  # 4
    parse_devices("all")  # "all"
    ```
    """
    if isinstance(spec, str) and spec.strip().lower() == "all":
        return "all"
    count = None
    if isinstance(spec, int) and not isinstance(spec, bool):
        count = spec
    elif isinstance(spec, str) and spec.strip().isdigit():
        count = int(spec.strip())
    if count is None or count < 1:
        raise ValueError(
            f"devices must be 'all' or a positive number of devices, got {spec!r}. "
            "Use e.g. devices=2 (or --devices all), or leave it unset for one device."
        )
    return count
