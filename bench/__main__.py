"""``python -m bench [NAME ...]``: run the benchmarks (all by default).

Each benchmark module prints its own figures and the ratio against a baseline
measured in the same run; copy the latest output into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import bench
from candlecast import logs


def available() -> list[str]:
    """Benchmark modules: those of ``bench/`` with a ``main()`` (not helpers like the
    pandas reference)."""
    names = (m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))
    return sorted(n for n in names if hasattr(importlib.import_module(f"bench.{n}"), "main"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {available()})"
    )
    args = parser.parse_args(argv)
    logs.configure()
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {available()}")
    for name in names:
        print(f"\n=== bench.{name} ===", flush=True)
        importlib.import_module(f"bench.{name}").main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
