"""``python -m data.sample [OUT_DIR]``: (re)generate the embedded default sample, byte for byte.

``python -m data.sample --example [OUT_DIR]`` (re)generates the README's "Bring your own data" example
(``docs/examples/my.csv`` and ``my.schema.yaml``).
"""

import sys

from data.sample import EXAMPLE_DIR, SAMPLE_DIR, write_example, write_sample

if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--example"]:
        csv_path, schema_path = write_example(args[1] if len(args) > 1 else EXAMPLE_DIR)
    else:
        *csv_paths, schema_path = write_sample(args[0] if args else SAMPLE_DIR)
        csv_path = " and ".join(map(str, csv_paths))
    print(f"wrote {csv_path} and {schema_path}")
