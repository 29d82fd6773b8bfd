"""The `fnrl` command line. Agents and training arrive with the on-policy issue; for now it lists
what fnrl provides."""

from __future__ import annotations

import argparse
import sys

import fnrl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fnrl", description=fnrl.__doc__)
    parser.add_argument("--version", action="version", version=f"fnrl {fnrl.__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("list", help="list the public building blocks")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name in sorted(n for n in dir(fnrl) if not n.startswith("_")):
            print(name)
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
