"""``python -m data.sample [OUT_DIR]``: (re)generate the embedded default sample, byte for byte."""

import sys

from data.sample import SAMPLE_DIR, write_sample

if __name__ == "__main__":
    csv_path, schema_path = write_sample(sys.argv[1] if len(sys.argv) > 1 else SAMPLE_DIR)
    print(f"wrote {csv_path} and {schema_path}")
