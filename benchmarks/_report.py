"""Shared plumbing of the benchmark scripts: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import pathlib
import platform
import time

import jax

from agents.cli import cpu_cores

BENCHMARKS_MD = pathlib.Path(__file__).resolve().parent.parent / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nEvery figure here comes from a script in `benchmarks/` that anyone can run.\n"


def machine() -> str:
    """A one-line description of where the numbers were measured."""
    return (f"{platform.processor() or platform.machine()}, {cpu_cores()} CPU cores, {jax.device_count()} × "
            f"{jax.devices()[0].platform} JAX device(s) in the reporting process, jax {jax.__version__}, "
            f"Python {platform.python_version()}")


def update_section(name: str, title: str, command: str, body: str) -> None:
    """Replaces (or appends) the section `name` of BENCHMARKS.md, keeping every other section."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    section = (f"{begin}\n## {title}\n\nCommand: `{command}` — machine: {machine()}; "
               f"{time.strftime('%Y-%m-%d')}.\n{body}\n{end}")
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else HEADER
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text)
